"""Logic grader (ProntoQA, LogicBench and other closed-answer sources), as the reference does it.

The response's answer is the **candidate word whose last whole-word occurrence comes latest** in the
response, with words found by the regex ``\\b\\w+\\b``; the response is correct iff that candidate
equals the gold answer. "The statement is false ... so the answer is True" answers ``true``.

Candidates, by source:

| data source                  | candidates             | case                                    |
|------------------------------|------------------------|-----------------------------------------|
| ``prontoqa``                 | ``true``, ``false``    | insensitive (response and gold lowered) |
| ``LogicBench``               | ``A``, ``B``, ``C``, ``D`` | sensitive (the article "a" is not ``A``) |
| any, with ``choices`` given  | the choices            | sensitive for one-letter option labels, else insensitive |
| ``logic`` without choices    | inferred from the gold: true/false, yes/no, or option letters ``A``… | as above |

A multi-word choice ("not valid") is matched as a whole phrase (its last occurrence's end position
counts); for single words this is the same as the token rule. A gold answer that is not one of the
candidates is a data error and raises ``ValueError``. Only regular expressions run on model text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from sarl.grading.math import Grade

_WORD = re.compile(r"\b\w+\b")
TRUE_FALSE = ("true", "false")
YES_NO = ("yes", "no")
# data_source → candidate style (sources are compared lower-cased).
SOURCE_STYLE = {"prontoqa": "true_false", "logicbench": "letters"}


def _clean_gold(gold: str) -> str:
    """``" (B). "`` → ``"B"``: surrounding space, brackets and final punctuation never matter."""
    return str(gold).strip().strip("().:;,!? ").strip()


def last_candidate(response: str, candidates: Sequence[str], case_sensitive: bool) -> str | None:
    """The candidate whose last whole-word occurrence ends latest in ``response`` (None if none occurs).

    Single-word candidates are compared against ``\\b\\w+\\b`` tokens; multi-word candidates are found
    as whole phrases. Ties (a phrase ending where one of its words ends) go to the longer candidate."""
    def key(s: str) -> str:
        return s if case_sensitive else s.lower()

    words = {key(c): c for c in candidates if _WORD.fullmatch(c)}
    best: tuple[int, int] | None = None
    winner = None
    if words:
        for m in _WORD.finditer(response):
            c = words.get(key(m.group(0)))
            if c is not None and (best is None or (m.end(), len(c)) > best):
                best, winner = (m.end(), len(c)), c
    flags = 0 if case_sensitive else re.IGNORECASE
    for c in candidates:
        if c in words.values():
            continue
        last = None
        for m in re.finditer(r"(?<!\w)" + re.escape(c) + r"(?!\w)", response, flags):
            last = m
        if last is not None and (best is None or (last.end(), len(c)) > best):
            best, winner = (last.end(), len(c)), c
    return winner


def candidates_for(gold: str, data_source: str | None = None,
                   choices: Sequence[str] | None = None) -> tuple[list[str], bool]:
    """The candidate answers and whether they compare case-sensitively (see the module table)."""
    if choices:
        letters = all(len(c) == 1 and c.isalpha() for c in choices)
        return list(choices), letters
    style = SOURCE_STYLE.get((data_source or "").lower())
    g = _clean_gold(gold)
    if style is None:  # infer from the gold answer
        if g.lower() in TRUE_FALSE:
            style = "true_false"
        elif g.lower() in YES_NO:
            style = "yes_no"
        elif len(g) == 1 and g in string.ascii_uppercase:
            style = "letters"
        else:
            raise ValueError(f"logic grader: cannot tell the candidate answers for gold {gold!r} "
                             f"(data source {data_source!r}); give the problem's choices")
    if style == "true_false":
        return list(TRUE_FALSE), False
    if style == "yes_no":
        return list(YES_NO), False
    last = max("D", g) if len(g) == 1 and g in string.ascii_uppercase else "D"
    return list(string.ascii_uppercase[: string.ascii_uppercase.index(last) + 1]), True


def grade_logic(response: str, gold: str, *, data_source: str | None = None,
                choices: Sequence[str] | None = None, metadata: dict[str, Any] | None = None) -> Grade:
    """Grade a closed-answer logic response (see the module docstring). ``choices`` may also come from
    ``metadata["choices"]``."""
    if not choices and metadata and isinstance(metadata.get("choices"), list):
        choices = metadata["choices"]
    cands, case_sensitive = candidates_for(gold, data_source, choices)
    g = _clean_gold(gold)
    norm = (lambda s: s) if case_sensitive else str.lower
    golds = [c for c in cands if norm(c) == norm(g)]
    if not golds:
        raise ValueError(f"logic grader: gold {gold!r} is not one of the candidates {cands} "
                         f"(data source {data_source!r})")
    picked = last_candidate(response, cands, case_sensitive)
    if picked is None:
        return Grade(correct=False, extracted="")
    return Grade(correct=norm(picked) == norm(golds[0]), extracted=picked)
