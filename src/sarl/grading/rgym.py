"""reasoning-gym grader: the generator's own ``score_answer(answer, entry)`` decides.

Problems from :mod:`sarl.data.rgym` have ``data_source = "reasoning_gym/<generator>"`` and keep the
generator's entry in ``metadata["reasoning_gym"]["entry"]``. The grader extracts one answer string
from the response and passes it with the entry to the generator's ``score_answer``; the response is
correct iff the score is at least :data:`CORRECT_THRESHOLD` (1.0: full credit only; reasoning-gym gives
partial credit such as 0.01 for a wrong number in a well-formed answer, 0.25 for a trivially true
propositional conclusion, or len(gold)/len(answer) when the gold is a substring). The score is kept in
``Grade.score``.

Answer extraction (first rule that applies):

1. the content of the last ``<answer>...</answer>`` (reasoning-gym's own convention);
2. the text after the last ``Answer:`` (any case, ``**Answer:**`` too): the rest of that line, or the
   next non-empty line when the line ends there (the ``format`` instruction asks for
   ``Answer: xxx`` on the final line);
3. the content of the last ``\\boxed{}``;
4. otherwise, for numeric generators, the last number of the response (the math grader's extraction);
   for the others, the last non-empty line.

Then it is cleaned: Markdown emphasis, backticks, ``$`` and ``\\text{}`` wrappers and a final full stop
are removed. For numeric generators (:data:`NUMERIC_GENERATORS`) a piece of text from rules 1–3 is
reduced to one number: the part after its last ``=`` (``x = 5``), then its first number or fraction
(``18 (2 + 16)`` → ``18``), thousands commas dropped. For ``syllogism`` the first ``yes``/``no`` word
is taken and capitalised, as its exact-match scorer expects ``Yes``/``No``.

Without the entry (a training row that has only the gold string), the grader scores against
``{"answer": gold, "metadata": {}}``, which is all the numeric generators' scorers read;
``propositional_logic`` needs its premises and raises ``ValueError`` instead.

``score_answer`` runs under :func:`~sarl.grading.timeouts.call_with_timeout` (10 s: it is usually
well under a millisecond, but a worker thread's first call starts a helper process that imports
reasoning-gym, about 2 s); a timeout or an exception inside the scorer counts as score 0.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from sarl.grading.math import Grade, answer_numbers, extract_answer, last_boxed
from sarl.grading.timeouts import GradingTimeout, call_with_timeout

RG_SOURCE_PREFIX = "reasoning_gym/"
CORRECT_THRESHOLD = 1.0
DEFAULT_TIMEOUT = 10.0
MAX_ANSWER_CHARS = 2000  # longer extractions are cut: no scorer needs more, and parsing stays cheap

# Generators whose answer is one number (extraction reduces text to that number).
NUMERIC_GENERATORS = frozenset({
    "gsm_symbolic", "basic_arithmetic", "chain_sum", "decimal_chain_sum", "products", "leg_counting",
    "gcd", "lcm", "count_bits", "simple_equations",
})
# Generators with a text answer whose scorers were checked with this extraction.
TEXT_GENERATORS = frozenset({"knights_knaves", "syllogism", "propositional_logic"})
# Any other generator ("reasoning_gym/<name>") is graded as a text answer.
KNOWN_GENERATORS = NUMERIC_GENERATORS | TEXT_GENERATORS
# Generators whose scorer reads more of the entry than its answer.
NEEDS_ENTRY = frozenset({"propositional_logic"})

_ANSWER_TAG = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_LINE = re.compile(r"answer\s*\**\s*[:：]", re.IGNORECASE)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def rg_name(data_source: str | None) -> str | None:
    """``"reasoning_gym/chain_sum"`` → ``"chain_sum"``; None for other sources."""
    if data_source and data_source.startswith(RG_SOURCE_PREFIX):
        return data_source[len(RG_SOURCE_PREFIX):]
    return None


def _clean(text: str) -> str:
    s = text.strip()
    for _ in range(3):  # nested wrappers: \text{\textbf{Yes}}
        s = _TEXT_WRAP.sub(r"\1", s)
    s = s.replace("**", "").replace("__", "").replace("`", "").replace("$", "")
    s = s.strip().strip("*").strip()
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1].rstrip()
    return s


def _after_answer_marker(response: str) -> str | None:
    last = None
    for m in _ANSWER_LINE.finditer(response):
        last = m
    if last is None:
        return None
    rest = response[last.end():].lstrip("* \t")
    for line in rest.splitlines():
        if line.strip().strip("*").strip():
            return line
    return ""


def _one_number(text: str) -> str:
    """The number a short answer text states: after its last ``=``, the first number or fraction."""
    boxed = last_boxed(text)
    if boxed:
        text = boxed
    if "=" in text:
        text = text.rsplit("=", 1)[1]
    nums = answer_numbers(text)
    return nums[0] if nums else ""


def extract_rg_answer(response: str, generator: str | None = None) -> str:
    """The answer string passed to ``score_answer`` (rules in the module docstring)."""
    numeric = generator in NUMERIC_GENERATORS
    tags = _ANSWER_TAG.findall(response)
    piece = tags[-1] if tags else _after_answer_marker(response)
    if piece is None:
        piece = last_boxed(response)
    if piece is None:
        if numeric:
            return extract_answer(response)
        lines = [ln for ln in response.splitlines() if ln.strip()]
        piece = lines[-1] if lines else ""
    piece = _clean(piece)[:MAX_ANSWER_CHARS]
    if numeric:
        return _one_number(piece)
    if generator == "syllogism":
        m = _YES_NO.search(piece)
        return m.group(1).capitalize() if m else piece
    return piece


@functools.cache
def _generator(name: str):
    """A default-config instance of the generator, used only for its ``score_answer``."""
    import reasoning_gym

    return reasoning_gym.create_dataset(name, size=1, seed=0)


def _score(name: str, answer: str, entry: dict[str, Any]) -> float:
    """Module level so that the helper process of :func:`call_with_timeout` can run it."""
    return float(_generator(name).score_answer(answer, entry))


def score_rg_answer(name: str, answer: str, entry: dict[str, Any], timeout: float | None = DEFAULT_TIMEOUT) -> float:
    """``score_answer`` of generator ``name`` under a time limit; 0.0 on a timeout or a scorer error."""
    try:
        return call_with_timeout(_score, name, answer, entry, timeout=timeout)
    except GradingTimeout:
        return 0.0
    except ImportError:
        raise
    except Exception:  # noqa: BLE001 - a scorer that chokes on odd text scores 0, as in reasoning-gym
        return 0.0


def grade_reasoning_gym(response: str, gold: str, *, data_source: str | None = None,
                        metadata: dict[str, Any] | None = None, choices: Any = None,
                        timeout: float | None = DEFAULT_TIMEOUT) -> Grade:
    """Grade with the generator's own scorer (see the module docstring). The generator comes from
    ``metadata["reasoning_gym"]["dataset"]`` or else from ``data_source``."""
    info = (metadata or {}).get("reasoning_gym") or {}
    name = info.get("dataset") or rg_name(data_source)
    if not name:
        raise ValueError(f"reasoning-gym grader: no generator name (data source {data_source!r}, "
                         f"metadata without 'reasoning_gym.dataset')")
    entry = info.get("entry")
    if entry is None:
        if name in NEEDS_ENTRY:
            raise ValueError(f"reasoning-gym grader: {name} needs the generator entry in "
                             f"metadata['reasoning_gym']['entry'] (its scorer reads the premises)")
        entry = {"question": "", "answer": str(gold), "metadata": {}}
    answer = extract_rg_answer(response, name)
    if not answer:
        return Grade(correct=False, extracted="", score=0.0)
    score = score_rg_answer(name, answer, entry, timeout=timeout)
    return Grade(correct=score >= CORRECT_THRESHOLD, extracted=answer, score=score)
