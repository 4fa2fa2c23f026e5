"""Problems from a local JSONL/Parquet/CSV file or, optionally, a Hugging Face hub dataset.

Row schema (the reference's verl-style rows load as they are):

| field        | read from (first present wins)                                  | default              |
|--------------|-----------------------------------------------------------------|----------------------|
| question     | ``question``, ``problem``, ``extra_info.question``, the last user message of ``prompt`` (verl's chat-format rows) | required |
| answer       | ``reward_model.ground_truth``, ``answer``, ``extra_info.answer``| required             |
| data_source  | ``data_source``                                                 | the file's stem      |
| id           | ``id``                                                          | ``<stem>-<row index>`` (0-based) |
| solution     | ``solution``                                                    | None                 |
| choices      | ``choices`` (a list)                                            | None                 |

``reward_model.ground_truth`` wins over ``answer`` because it is what verl grades against (in verl's
GSM8K rows ``answer`` can be the whole worked solution). A question that ends with one of the
reference's instructions (its preprocessing appends ``math_instruction`` / ``math_instruction_noformat``)
has it removed, since sarl appends the instruction itself (``data.instruction``); the removed one is
kept as ``metadata["instruction_removed"]``. Every other column is kept in ``metadata``
(made JSON-serialisable). A row without a question or an answer raises :class:`~sarl.io.DataError`
naming the file, the row (1-based, as in the file) and the keys the row does have.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from sarl.data.schema import Problem, json_safe
from sarl.errors import SarlError
from sarl.io import DataError, get_key, read_rows
from sarl.prompts import INSTRUCTIONS

QUESTION_KEYS = ("question", "problem", "extra_info.question")
ANSWER_KEYS = ("reward_model.ground_truth", "answer", "extra_info.answer")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".parquet", ".csv")
# "owner/name", with an optional "@config" and ":split" (a Hugging Face hub id), e.g. openai/gsm8k@main:train.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?:@[\w.-]+)?(?::[\w.-]+)?$")


def file_stem(path: str | Path) -> str:
    """``data/gsm8k_test.jsonl.gz`` → ``gsm8k_test`` (every data suffix removed)."""
    name = Path(path).name
    for suffix in sorted(DATA_SUFFIXES + (".gz",), key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        try:
            value = get_key(row, k)
        except KeyError:
            continue
        if value is not None:
            return k, value
    return None, None


def _question_from_prompt(prompt: Any) -> tuple[str | None, Any]:
    """verl's chat-format rows: the question is the content of the last user message of ``prompt`` (a
    list of messages; a plain-text ``prompt`` column is not taken for a question)."""
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return "prompt", users[-1].get("content")
    return None, None


def _strip_instruction(question: str) -> tuple[str, str | None]:
    """``question`` without a trailing reference instruction, and that instruction's name (or None)."""
    q = question.strip()
    for name, text in INSTRUCTIONS.items():
        if text and q.endswith(text.strip()) and len(q) > len(text.strip()):
            return q[: -len(text.strip())].rstrip(), name
    return q, None


def rows_to_problems(rows: list[dict[str, Any]], where: str, stem: str) -> list[Problem]:
    """Convert rows in the schema above; ``where`` names the source in errors, ``stem`` makes the
    default ``data_source`` and ids."""
    out = []
    ids: dict[str, int] = {}
    for i, row in enumerate(rows):
        available = ", ".join(sorted(map(str, row))) or "(none)"
        qkey, question = _first(row, QUESTION_KEYS)
        if qkey is None:
            qkey, question = _question_from_prompt(row.get("prompt"))
        if not isinstance(question, str) or not question.strip():
            what = "has no question" if qkey is None else f"has an empty or non-text {qkey!r}"
            raise DataError(f"{where}: row {i + 1} {what}; expected one of {', '.join(QUESTION_KEYS)} or a "
                            f"'prompt' list of chat messages with a user turn; available: {available}")
        question, removed = _strip_instruction(question)
        akey, answer = _first(row, ANSWER_KEYS)
        if akey is None or (isinstance(answer, str) and not answer.strip()):
            raise DataError(f"{where}: row {i + 1} has no answer; expected one of {', '.join(ANSWER_KEYS)}; "
                            f"available: {available}")
        if isinstance(answer, (list, dict)):
            raise DataError(f"{where}: row {i + 1}: {akey!r} must be a single value, got {type(answer).__name__}")
        choices = row.get("choices")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)):
            raise DataError(f"{where}: row {i + 1}: 'choices' must be a list of strings")
        pid = str(row["id"]) if row.get("id") is not None else f"{stem}-{i}"
        if pid in ids:
            raise DataError(f"{where}: row {i + 1} repeats the id {pid!r} of row {ids[pid] + 1}")
        ids[pid] = i
        # Nested containers (reward_model, extra_info) stay whole in metadata: they hold more than the
        # one value read from them (style, split, index).
        used = {"id", "data_source", "solution", "choices"} | {k for k in (qkey, akey) if k in row}
        meta = {k: v for k, v in row.items() if k not in used}
        if removed:
            meta["instruction_removed"] = removed
        out.append(Problem(
            id=pid,
            data_source=str(row.get("data_source") or stem),
            question=question.strip(),
            answer=str(answer).strip(),
            solution=row.get("solution") if isinstance(row.get("solution"), str) else None,
            choices=choices,
            metadata=json_safe(meta),
        ))
    return out


def load_local(path: str | Path, limit: int | None = None) -> list[Problem]:
    """Problems from a ``.jsonl``/``.jsonl.gz``/``.json``/``.parquet``/``.csv`` file (file order).
    Malformed lines raise :class:`~sarl.io.DataError` with ``file:line``."""
    p = Path(path)
    rows = read_rows(p)
    if limit is not None:
        if limit < 0:
            raise SarlError(f"limit must be >= 0, got {limit}")
        rows = rows[:limit]
    return rows_to_problems(rows, str(p), file_stem(p))


def looks_like_hub_id(name: str) -> bool:
    """``owner/name[@config][:split]``, without a data-file suffix."""
    return bool(HUB_ID.match(name)) and not name.lower().endswith(DATA_SUFFIXES)


def parse_hub_id(hub_id: str, default_split: str = "test") -> tuple[str, str | None, str]:
    """``owner/name[@config][:split]`` → (repo, config or None, split)."""
    rest, _, split = hub_id.partition(":")
    repo, _, config = rest.partition("@")
    return repo, config or None, split or default_split


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """``datasets`` and ``huggingface_hub`` in offline mode while loading (they read their environment
    variables once, at import, so the module constants are set too)."""
    if not offline:
        yield
        return
    import datasets
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def load_hub(hub_id: str, limit: int | None = None, default_split: str = "test") -> list[Problem]:
    """A Hugging Face hub dataset, ``owner/name[@config][:split]`` (e.g. ``openai/gsm8k@main:train``;
    the split defaults to ``default_split``: ``test`` for evaluation, ``train`` for ``data.train``),
    through the optional ``datasets`` package; rows must follow the schema above. Needs network access
    unless the dataset is already in the local ``datasets`` cache."""
    if importlib.util.find_spec("datasets") is None:
        raise DataError(f"{hub_id!r} is not a built-in dataset or a file; to load it from the Hugging Face "
                        f"hub install the optional package: pip install datasets (network access needed)")
    import datasets

    from sarl.io import ALLOW_DOWNLOAD_ENV, downloads_allowed

    repo, config, split = parse_hub_id(hub_id, default_split)
    online = downloads_allowed()
    try:
        with _hub_offline(not online):
            ds = datasets.load_dataset(repo, config, split=split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, config or split: all end here
        what = f"config {config!r}, split {split!r}" if config else f"split {split!r}"
        how = "" if online else f" (offline: only the local datasets cache is read; set {ALLOW_DOWNLOAD_ENV}=1 to fetch)"
        raise DataError(f"{hub_id}: could not load {what} from the Hugging Face hub{how} "
                        f"({type(exc).__name__}: {exc}); give a config as owner/name@config and a split as "
                        ":split") from None
    n = len(ds) if limit is None else min(limit, len(ds))
    rows = [dict(ds[i]) for i in range(n)]
    return rows_to_problems(rows, f"{hub_id} ({split})", repo.split("/")[-1])
