"""Math answer checking: extraction (what did the response answer?) separate from equivalence.

Reference-compatible rule: the answer is the **last** number or ``\\frac{a}{b}`` in the response, and it
is correct if it equals the gold answer as a string (after removing ``,``, spaces and ``$``) or if
math-verify says the two are equivalent. sarl keeps that rule and fixes the places where the reference's
regex reads the wrong thing (each fix has a row in ``tests/test_grading.py`` or
``tests/test_graders_extra.py``):

| response ends with      | reference extracts | sarl extracts |
|-------------------------|--------------------|---------------|
| ``1,000``               | ``000``            | ``1000``      |
| ``\\dfrac{1}{2}``        | ``2``              | ``\\frac{1}{2}`` |
| ``1/2``                 | ``2``              | ``\\frac{1}{2}`` |
| ``18.`` (full stop)     | ``18.``            | ``18``        |
| ``\\boxed{18} ... step 3`` | ``3``           | ``18`` (a ``\\boxed{}`` answer wins) |
| ``\\frac12`` (no braces)  | ``12``             | ``\\frac{1}{2}`` |
| ``25 cm^2``             | ``2``              | ``25`` (a unit's exponent is not an answer) |
| ``−3`` (U+2212 minus)   | ``3``              | ``-3``        |

Also: a trailing ``%`` and ``$`` (plain or escaped, ``\\%`` and ``\\$``) are ignored on both sides, so
``50%`` matches a gold of ``50`` but not ``0.5``. Not handled, by design: scientific notation
(``1.5e3`` reads as ``3``), space-separated thousands (``1 000``) and unboxed tuples (``(2, 3)`` reads
as ``3``). Model text is only parsed, never executed; math-verify runs under
:func:`~sarl.grading.timeouts.call_with_timeout`, which works in any thread.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sarl.grading.timeouts import GradingTimeout, call_with_timeout

_NUM = r"-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
# The reference's patterns (kept to document and test the differences).
_REF_NUM = r"-?(?:\d+\.?\d*|\.\d+)"
_REF_FRAC = r"-?\s*\\frac\s*{\s*" + _REF_NUM + r"\s*}\s*{\s*" + _REF_NUM + r"\s*}"
_REF_ANSWER = re.compile(r"(?:" + _REF_FRAC + "|" + _REF_NUM + r")", re.IGNORECASE)

# A \frac argument: ``{number}`` or, as LaTeX allows, one bare digit (``\frac12``, ``\frac{1}2``).
_FRAC_ARG = r"(?:{\s*(" + _NUM + r")\s*}|(\d))"
_LATEX_FRAC = r"-?\s*\\[dt]?frac\s*" + _FRAC_ARG + r"\s*" + _FRAC_ARG
_PLAIN_FRAC = r"(?<![\d/.])(-?\d+)\s*/\s*(\d+)(?![\d/])"
_ANSWER = re.compile(r"(?P<lf>" + _LATEX_FRAC + r")|(?P<pf>" + _PLAIN_FRAC + r")|(?P<num>" + _NUM + r")")
# Text just before a unit's exponent: ``cm^2``, ``m^{3}``, ``\text{ft}^2``. A number there is never the answer.
_UNIT_EXPONENT = re.compile(r"(?:[A-Za-z]|\\(?:text|mathrm)\{[^{}]*\})\s*\^\s*\{?\s*$")
# Unicode minus signs (U+2212 minus, small and full-width hyphen-minus). Dashes stay: "3–5" is a range.
_MINUS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})

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


def _format(m: re.Match) -> str:
    """One match of ``_ANSWER`` as a clean answer: ``\\frac{a}{b}`` for any fraction, no commas."""
    if m.group("lf"):
        fm = re.match(_LATEX_FRAC, m.group("lf"))
        assert fm is not None  # the same pattern matched inside _ANSWER
        num = (fm.group(1) or fm.group(2)).replace(",", "")
        den = (fm.group(3) or fm.group(4)).replace(",", "")
        sign = "-" if m.group("lf").lstrip().startswith("-") else ""
        return f"{sign}\\frac{{{num}}}{{{den}}}"
    if m.group("pf"):
        num, den = re.match(_PLAIN_FRAC, m.group("pf")).groups()  # type: ignore[union-attr]
        return f"\\frac{{{num}}}{{{den}}}" if not num.startswith("-") else f"-\\frac{{{num[1:]}}}{{{den}}}"
    return m.group("num").replace(",", "")


def _answer_matches(text: str):
    for m in _ANSWER.finditer(text):
        if m.group("num") and _UNIT_EXPONENT.search(text, max(0, m.start() - 40), m.start()):
            continue  # the 2 of "cm^2"
        yield m


def answer_numbers(text: str) -> list[str]:
    """Every number or fraction in ``text`` that could be an answer, in order, formatted as
    :func:`extract_answer` formats them (unit exponents skipped)."""
    return [_format(m) for m in _answer_matches(text.translate(_MINUS))]


def _last_number(text: str) -> str:
    last = None
    for m in _answer_matches(text):
        last = m
    return _format(last) if last is not None else ""


def extract_answer(text: str) -> str:
    """What a response answered: the last ``\\boxed{}`` if any, else the last number or fraction."""
    text = text.translate(_MINUS)
    boxed = last_boxed(text)
    if boxed:
        return boxed
    return _last_number(text)


def normalize(ans: str) -> str:
    """Remove what never changes a numeric answer: thousands commas, spaces, ``$``, ``%``, a final full stop."""
    s = str(ans).strip().translate(_MINUS)
    # escaped forms first: removing "$" from "\\$18" would leave "\\18"
    for ch in ("\\%", "\\$", ",", " ", "$", "%"):
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
    except Exception:  # noqa: BLE001 - math-verify raises on malformed LaTeX; unparsable = wrong
        return False


@dataclass(frozen=True)
class Grade:
    """One grading decision.

    ``correct``: the verdict used as the 0/1 reward. ``extracted``: what the grader read as the
    response's answer ("" when nothing was found). ``score``: the underlying score in [0, 1] when the
    grader has a graded one (reasoning-gym's ``score_answer`` gives partial credit), else None.
    """

    correct: bool
    extracted: str
    score: float | None = None


def grade_math(response: str, gold: str, *, data_source: str | None = None, metadata: dict | None = None,
               choices: Any = None, timeout: float | None = DEFAULT_TIMEOUT) -> Grade:
    """Grade one response against a gold answer (itself normalised through the same extraction when it
    holds a ``\\boxed{}`` or a ``####`` GSM8K tail). ``data_source``, ``metadata`` and ``choices`` are
    part of the one grader signature and not read here."""
    pred = extract_answer(response)
    g = str(gold)
    if "####" in g:
        g = g.split("####")[-1]
    boxed = last_boxed(g)
    if boxed:
        g = boxed
    return Grade(correct=answers_equal(pred, g, timeout=timeout) if pred else False, extracted=pred)
