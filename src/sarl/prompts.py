"""Prompt rendering: the question prompt used for ppl(a|q) and the null prompt used for ppl(a).

Both go through the tokenizer's chat template with the same system prompt; the null prompt has an
empty user turn. A tokenizer without a chat template falls back to plain text:
``"System: {system}\\nUser: {user}\\nAssistant: "``. A chat template that rejects a system role
(Gemma's raises "System role not supported") gets the system prompt folded into the user turn,
``"{system}\\n\\n{user}"``, as the reference does; the null prompt then holds the system prompt alone, so
ppl(a|q) and ppl(a) still differ only by the question.
"""

from __future__ import annotations

# The reference system's system prompt.
DEFAULT_SYSTEM_PROMPT = (
    "You are a reasoning expert assistant. Given a question, you will use your reasoning skills to "
    "solve the problem."
)

PLAIN_TEMPLATE = "System: {system}\nUser: {user}\nAssistant: "


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_chat(tokenizer, user: str, system: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """Render one user turn (after a system turn) ending with the assistant's generation prompt."""
    if not has_chat_template(tokenizer):
        return PLAIN_TEMPLATE.format(system=system or "", user=user)
    if system is None:
        return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
    try:
        return tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                             tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # jinja2's TemplateError from the template's raise_exception
        if "system" not in str(exc).lower():
            raise
    folded = f"{system}\n\n{user}" if user else system
    return tokenizer.apply_chat_template([{"role": "user", "content": folded}], tokenize=False,
                                         add_generation_prompt=True)


def user_message(question: str, instruction: str | None = None) -> str:
    """The user turn: the question, with the instruction (if any) appended after a space."""
    return question if not instruction else f"{question} {instruction}"


def render_prompt(tokenizer, question: str, system: str | None = DEFAULT_SYSTEM_PROMPT,
                  instruction: str | None = None) -> str:
    """The prompt for ppl(a|q): system prompt + question (+ an instruction appended to the question)."""
    return render_chat(tokenizer, user_message(question, instruction), system)


def render_null_prompt(tokenizer, system: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """The prompt for ppl(a): the same system prompt and an empty user turn."""
    return render_chat(tokenizer, "", system)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (templates already carry them)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
