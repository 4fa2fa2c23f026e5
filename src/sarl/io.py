"""Reading tables of rows (JSONL, Parquet, CSV) with errors that name the file, line and key, and an
append-only JSONL writer that survives crashes (each row is flushed and fsynced; a torn last line
from a crash is dropped on resume)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sarl.errors import OutputExistsError, SarlError


class DataError(SarlError):
    """Bad input data; the message names the file, row or key and what was expected."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl``/``.json``/``.parquet``/``.csv`` file (``.gz`` allowed for JSONL). Errors
    name the file (and the line where there is one)."""
    p = Path(path)
    try:
        return _read_rows(p)
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason}); expected a .jsonl, .json or "
                        ".csv text file, or .parquet") from None
    except (OSError, EOFError) as exc:  # e.g. a truncated or non-gzip .gz file
        raise DataError(f"{p}: cannot be read ({exc})") from None


def check_output_file(path: str | Path) -> Path:
    """Fail before any work when ``path`` cannot become an output file (a folder, or a parent that is a
    file); its folder is created."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a folder; give an output file name, e.g. {p / 'scored.jsonl'}")
    if p.parent.exists() and not p.parent.is_dir():
        raise DataError(f"{p.parent}: is a file, so {p} cannot be written")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _read_rows(p: Path) -> list[dict[str, Any]]:
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder; expected a .jsonl, .parquet or .csv file")
    name = p.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        rows = _read_jsonl(p)
    elif name.endswith(".json"):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{p}: expected a JSON list of objects")
        rows = data
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
            raise DataError(f"{p}: not a readable Parquet file ({exc})") from None
    elif name.endswith(".csv"):
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    else:
        raise DataError(f"{p}: unknown file type; expected .jsonl, .json, .parquet or .csv")
    if not rows:
        raise DataError(f"{p}: the file has no rows")
    return rows


def _read_jsonl(p: Path) -> list[dict[str, Any]]:
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    rows = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{p}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def get_key(row: dict[str, Any], key: str) -> Any:
    """``row[key]``, where a dotted key reaches into nested objects (``reward_model.ground_truth``)."""
    if key in row:
        return row[key]
    cur: Any = row
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(key)
        cur = cur[part]
    return cur


def require_keys(rows: list[dict[str, Any]], keys: Iterable[str], source: str) -> None:
    """Raise a :class:`DataError` naming the first row that lacks one of ``keys`` and listing the
    keys it does have."""
    for i, row in enumerate(rows, 1):
        for k in keys:
            try:
                get_key(row, k)
            except KeyError:
                raise DataError(
                    f"{source}: row {i} has no column {k!r}; available: {', '.join(sorted(row))}"
                ) from None


def count_complete_lines(path: Path) -> int:
    """Number of complete, valid JSON lines at the start of ``path``; truncates a torn tail in place."""
    if not path.exists():
        return 0
    good = 0
    keep = 0
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break  # no newline: a torn write
        line = data[pos:end]
        try:
            json.loads(line)
        except json.JSONDecodeError:
            break
        good += 1
        pos = end + 1
        keep = pos
    if keep < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(keep)
    return good


class TokenProgress:
    """Turns a model pass's ``(n, tokens)`` reports into ``callback(done, total, tokens_so_far)``: the
    command's progress in items with the tokens counted across every pass. ``done`` is set by the caller
    as items finish."""

    def __init__(self, callback: Callable[[int, int, int], None] | None, total: int, done: int = 0):
        self.callback, self.total, self.done, self.tokens = callback, total, done, 0

    def __call__(self, n: int = 0, tokens: int = 0) -> None:
        self.tokens += tokens
        if self.callback is not None:
            self.callback(self.done, self.total, self.tokens)


class JsonlAppender:
    """Append rows to a JSONL file, flushing and fsyncing after each batch."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open until close()

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            self._fh.write(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, p)


def settings_diff(before: dict[str, Any], now: dict[str, Any], ignore: Iterable[str] = ()) -> str | None:
    """The settings that differ (``"key: old before, new now; ..."``), or None; keys in ``ignore`` (those
    that do not change an output's content, e.g. threads or checkpoint frequency) are not compared."""
    before = json.loads(json.dumps(before, default=_json_default))
    now = json.loads(json.dumps(now, default=_json_default))
    skip = set(ignore)
    diff = [k for k in sorted(set(before) | set(now)) if k not in skip and before.get(k) != now.get(k)]
    if not diff:
        return None
    more = f" (and {len(diff) - 8} more)" if len(diff) > 8 else ""
    return "; ".join(f"{k}: {before.get(k)!r} before, {now.get(k)!r} now" for k in diff[:8]) + more


def guard_settings(path: str | Path, settings: dict[str, Any], output: str | Path, way_out: str,
                   ignore: Iterable[str] = (), has_results: bool = True) -> None:
    """Record the settings that determine an output's content in ``path`` (JSON), or, when an earlier
    run recorded different ones and the output already holds results (``has_results``), refuse to
    continue it: a resumed output never mixes results made with different settings. The error names
    every differing setting (then and now) and ``way_out``. An output without results (a run that failed
    before writing any) just gets the new record."""
    p = Path(path)
    if p.exists() and has_results:
        try:
            old = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        diff = settings_diff(old, settings, ignore)
        if diff:
            raise OutputExistsError(f"{output} holds results made with other settings ({diff}); {way_out}")
        return
    write_json_atomic(p, settings)


def flat_settings(obj: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict (or dataclass) as ``{"a.b": value}``, so differences name the exact key."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if not isinstance(obj, dict):
        return {prefix.rstrip("."): obj}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def truncate_steps(path: str | Path, keep_steps: int) -> None:
    """On resume from the checkpoint of step ``keep_steps``, drop the metrics rows logged after it (those
    steps are redone) and a torn last line, so that every step appears once."""
    path = Path(path)
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if row.get("step", 0) <= keep_steps:
            kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
    tmp.replace(path)


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` to a JSONL file (created with its folder when missing), flushed and fsynced, so a
    crash loses at most the line being written (which :func:`truncate_steps` then drops)."""
    with JsonlAppender(path) as out:
        out.write(rows)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` via a temporary file and rename, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)


ALLOW_DOWNLOAD_ENV = "SARL_ALLOW_DOWNLOAD"


def downloads_allowed(allow_download: bool = False) -> bool:
    """Whether a hub id may be fetched: ``--allow-download`` / ``allow_download=True``, or the
    environment variable ``SARL_ALLOW_DOWNLOAD=1``. Off by default: sarl runs offline."""
    return allow_download or os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")
