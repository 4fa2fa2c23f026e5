"""Math answer checking: extraction (what did the response answer?) separate from equivalence.

Reference-compatible rule: the answer is the **last** number or ``\\frac{a}{b}`` in the response, and it
is correct if it equals the gold answer as a string (after removing ``,``, spaces and ``$``) or if
math-verify says the two are equivalent. sarl keeps that rule and fixes the places where the reference's
regex reads the wrong thing (each fix has a row in ``tests/test_grading.py``):

| response ends with      | reference extracts | sarl extracts |
|-------------------------|--------------------|---------------|
| ``1,000``               | ``000``            | ``1000``      |
| ``\\dfrac{1}{2}``        | ``2``              | ``\\frac{1}{2}`` |
| ``1/2``                 | ``2``              | ``\\frac{1}{2}`` |
| ``18.`` (full stop)     | ``18.``            | ``18``        |
| ``\\boxed{18} ... step 3`` | ``3``           | ``18`` (a ``\\boxed{}`` answer wins) |

Also: a trailing ``%`` and ``$`` are ignored on both sides. Model text is only parsed, never executed;
math-verify runs under :func:`~sarl.grading.timeouts.call_with_timeout`, which works in any thread.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sarl.grading.timeouts import GradingTimeout, call_with_timeout

_NUM = r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# The reference's patterns (kept to document and test the differences).
_REF_NUM = r"-?(?:\d+\.?\d*|\.\d+)"
_REF_FRAC = r"-?\s*\\frac\s*{\s*" + _REF_NUM + r"\s*}\s*{\s*" + _REF_NUM + r"\s*}"
_REF_ANSWER = re.compile(r"(?:" + _REF_FRAC + "|" + _REF_NUM + r")", re.IGNORECASE)

_LATEX_FRAC = r"-?\s*\\[dt]?frac\s*{\s*(" + _NUM + r")\s*}\s*{\s*(" + _NUM + r")\s*}"
_PLAIN_FRAC = r"(?<![\d/.])(-?\d+)\s*/\s*(\d+)(?![\d/])"
_ANSWER = re.compile(r"(?P<lf>" + _LATEX_FRAC + r")|(?P<pf>" + _PLAIN_FRAC + r")|(?P<num>" + _NUM + r")")

DEFAULT_TIMEOUT = 5.0
# math-verify warns on every call that its own (main-thread-only) timeout is off; ours is in charge.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def extract_reference(text: str) -> str:
    """The reference's extraction, unchanged: the last match of its number-or-\\frac pattern."""
    last = None
    for m in _REF_ANSWER.finditer(text):
        last = m
    return last.group(0).strip() if last else ""


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def _last_number(text: str) -> str:
    last = None
    for m in _ANSWER.finditer(text):
        last = m
    if last is None:
        return ""
    if last.group("lf"):
        num, den = re.findall(_NUM, last.group("lf").split("frac", 1)[1])[:2]
        sign = "-" if last.group("lf").lstrip().startswith("-") else ""
        return f"{sign}\\frac{{{num.replace(',', '')}}}{{{den.replace(',', '')}}}"
    if last.group("pf"):
        num, den = re.match(_PLAIN_FRAC, last.group("pf")).groups()  # type: ignore[union-attr]
        return f"\\frac{{{num}}}{{{den}}}" if not num.startswith("-") else f"-\\frac{{{num[1:]}}}{{{den}}}"
    return last.group("num").replace(",", "")


def extract_answer(text: str) -> str:
    """What a response answered: the last ``\\boxed{}`` if any, else the last number or fraction."""
    boxed = last_boxed(text)
    if boxed:
        return boxed
    return _last_number(text)


def normalize(ans: str) -> str:
    """Remove what never changes a numeric answer: thousands commas, spaces, ``$``, ``%``, a final full stop."""
    s = str(ans).strip()
    for ch in (",", " ", "$", "%", "\\%", "\\$"):
        s = s.replace(ch, "")
    s = re.sub(r"\\(?:text|mathrm)\{\s*\}", "", s)
    return s.rstrip(".").strip()


def _verify(gold: str, pred: str) -> bool:
    from math_verify import parse, verify

    g = parse(f"${gold}$", parsing_timeout=None)
    p = parse(f"${pred}$", parsing_timeout=None)
    if not g or not p:
        return False
    return bool(verify(g, p, timeout_seconds=None))


def answers_equal(pred: str, gold: str, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
    """String equality after :func:`normalize`, else math-verify equivalence (False on a timeout)."""
    p, g = normalize(pred), normalize(gold)
    if not p or not g:
        return False
    if p == g:
        return True
    try:
        return call_with_timeout(_verify, g, p, timeout=timeout)
    except GradingTimeout:
        return False
    except Exception:  # math-verify raises on malformed LaTeX; an unparsable answer is wrong
        return False


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str


def grade_math(response: str, gold: str, timeout: float | None = DEFAULT_TIMEOUT) -> Grade:
    """Grade one response against a gold answer (itself normalised through the same extraction when it
    holds a ``\\boxed{}`` or a ``####`` GSM8K tail)."""
    pred = extract_answer(response)
    g = str(gold)
    if "####" in g:
        g = g.split("####")[-1]
    boxed = last_boxed(g)
    if boxed:
        g = boxed
    return Grade(correct=answers_equal(pred, g, timeout=timeout) if pred else False, extracted=pred)
