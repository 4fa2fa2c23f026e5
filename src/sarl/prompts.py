"""Prompt rendering, the one module: the reference's instructions, the system prompt, the user turn, the
chat rendering, the question prompt used for generation and ppl(a|q), the null prompt used for ppl(a),
and token ids of a rendered prompt.

The user turn is ``question + " " + instruction`` (:func:`user_message`), after the reference system
prompt, rendered by the tokenizer's chat template, so evaluation, training rollouts and ppl(a|q) see the
same prompt; the null prompt has the same system prompt and an empty user turn. A tokenizer without a
chat template falls back to plain text: ``"System: {system}\\nUser: {user}\\nAssistant: "``. A chat
template that rejects a system role (Gemma's raises "System role not supported") gets the system prompt
folded into the user turn, ``"{system}\\n\\n{user}"``, as the reference does; the null prompt then holds
the system prompt alone, so ppl(a|q) and ppl(a) still differ only by the question.

Pure text over a tokenizer (no model, no torch, no files): the data layer reads :data:`INSTRUCTIONS` to
strip them from the questions of reference-style rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sarl.errors import UnknownNameError

if TYPE_CHECKING:
    from sarl.data.schema import Problem

# The reference system's system prompt.
DEFAULT_SYSTEM_PROMPT = (
    "You are a reasoning expert assistant. Given a question, you will use your reasoning skills to "
    "solve the problem."
)

PLAIN_TEMPLATE = "System: {system}\nUser: {user}\nAssistant: "

# The reference's default: free-form reasoning; the grader reads the last number.
INSTRUCTION_NOFORMAT = "Please explain your reasoning process before providing an answer."
# The reference's formatted variant: a final "Answer: xxx" line.
INSTRUCTION_FORMAT = (
    "Please explain your reasoning process first. On the final line, output only your answer, a single "
    'number or fractional expression (e.g. 18, 0.5, \\frac{1}{2}), using the format of "Answer: xxx".'
)
INSTRUCTIONS: dict[str, str | None] = {
    "noformat": INSTRUCTION_NOFORMAT,
    "format": INSTRUCTION_FORMAT,
    "none": None,  # the bare question
}
DEFAULT_INSTRUCTION = "noformat"


def get_instruction(name: str | None = DEFAULT_INSTRUCTION) -> str | None:
    """The instruction text for ``"noformat"`` (default), ``"format"`` or ``"none"`` (None: no
    instruction). Unknown names raise :class:`~sarl.errors.UnknownNameError` (a ``KeyError``) listing the
    valid ones."""
    if name is None:
        return None
    try:
        return INSTRUCTIONS[name]
    except KeyError:
        raise UnknownNameError(f"unknown instruction {name!r}; choose one of: {', '.join(INSTRUCTIONS)}") from None


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
    """The prompt for ppl(a|q): system prompt + question (+ an instruction text appended to the question)."""
    return render_chat(tokenizer, user_message(question, instruction), system)


def render_problem_prompt(tokenizer, problem: Problem | str, *, instruction: str | None = DEFAULT_INSTRUCTION,
                          system: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """The generation prompt for one problem (or question string): system prompt, then the question
    followed by the named instruction (:data:`INSTRUCTIONS`), through the chat template."""
    question = problem if isinstance(problem, str) else problem.question
    return render_prompt(tokenizer, question, system, get_instruction(instruction))


def render_null_prompt(tokenizer, system: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """The prompt for ppl(a): the same system prompt and an empty user turn."""
    return render_chat(tokenizer, "", system)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (templates already carry them)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
