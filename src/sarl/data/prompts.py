"""The reference's two evaluation instructions and the eval prompt built from them.

The user turn is ``question + " " + instruction``, after the reference system prompt, rendered by the
tokenizer's chat template: exactly :func:`sarl.prompts.render_prompt`, which this module reuses so that
evaluation and ppl(a|q) see the same prompt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sarl.errors import UnknownNameError
from sarl.prompts import DEFAULT_SYSTEM_PROMPT, render_prompt

if TYPE_CHECKING:
    from sarl.data.schema import Problem

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
    instruction). Unknown names raise ``KeyError`` listing the valid ones."""
    if name is None:
        return None
    try:
        return INSTRUCTIONS[name]
    except KeyError:
        raise UnknownNameError(f"unknown instruction {name!r}; choose one of: {', '.join(INSTRUCTIONS)}") from None


def render_problem_prompt(tokenizer, problem: Problem | str, *, instruction: str | None = DEFAULT_INSTRUCTION,
                          system: str | None = DEFAULT_SYSTEM_PROMPT) -> str:
    """The generation prompt for one problem (or question string): system prompt, then the question
    followed by the named instruction, through the chat template."""
    question = problem if isinstance(problem, str) else problem.question
    return render_prompt(tokenizer, question, system, get_instruction(instruction))
