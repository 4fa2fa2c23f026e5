"""The run folder of a training job (``sarl train`` on either engine, ``sarl sft``): one class that keeps
two runs from mixing, records what a run was made with, and appends its logs.

What a run folder holds (besides the job's checkpoints and model):

- ``config.yaml``: the resolved config, exactly ``yaml.safe_dump(config, sort_keys=False)`` of what the
  job was given; never extra keys, so it reloads as the same config.
- ``run.yaml``: facts resolved when the run (last) started: ``engine`` (``native``, ``trl``, ``sft``)
  and, where the job knows them, ``strategy``, ``processes``, ``precision``.
- ``metrics.jsonl``: one row per logged step (each with ``step``), also sent to the metric loggers
  (:mod:`sarl.train.loggers`).
- ``samples.jsonl``: scored rollouts, one layout for every engine (:func:`sample_rows`).

The rules (:meth:`RunFolder.check`, read only, so it runs before any slow work): a new run into a folder
that holds ``metrics.jsonl`` is refused (``--resume`` continues it); a resumed run must have the saved
config (compared by ``settings_check``, by default :func:`sarl.train.checkpoint.check_resume_settings`)
and every fact it names equal to the saved ones. After a checkpoint of step ``s`` is restored,
:meth:`RunFolder.truncate` keeps the log rows of steps ``<= s`` (later steps are redone).

Only the main process writes (``main``; the attribute may be set once the job knows its rank): every
writing method is a no-op elsewhere. Folders written before ``run.yaml`` existed are read too: a TRL
run's ``config.yaml`` held an extra ``engine`` key, an SFT run's settings were ``config.json`` with
``resolved_precision``; those keys are read as facts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sarl.errors import OutputExistsError
from sarl.io import DataError, append_jsonl, truncate_steps, write_text_atomic

CONFIG, FACTS, METRICS, SAMPLES = "config.yaml", "run.yaml", "metrics.jsonl", "samples.jsonl"
# keys that old run folders kept in their saved config and that are facts now: {old key: fact}
LEGACY_FACTS = {"engine": "engine", "resolved_precision": "precision"}

# settings_check(saved config file, config now, run folder): raise OutputExistsError when they differ
SettingsCheck = Callable[[Path, dict, Path], None]


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping file; ``{}`` if it holds no mapping; :class:`DataError` naming the file if it
    does not parse."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too (old SFT folders)
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    return data if isinstance(data, dict) else {}


def _training_settings(saved: Path, config: dict, out: Path) -> None:
    from sarl.train.checkpoint import check_resume_settings

    check_resume_settings(saved, config, out)


class RunFolder:
    """One job's run folder (module docstring).

    Args:
        out: the folder.
        main: whether this process writes (rank 0); the others only check.
        option: how the user names the folder, for messages (``trainer.out_dir``, ``-o``).
        settings_check: compares a resumed run's saved config with its config now (default: the
            training recipe's rules, :func:`sarl.train.checkpoint.check_resume_settings`).
    """

    def __init__(self, out: str | Path, *, main: bool = True, option: str = "trainer.out_dir",
                 settings_check: SettingsCheck | None = None):
        self.out = Path(out)
        self.main = main
        self.option = option
        self.settings_check = settings_check or _training_settings
        self.loggers: list[Any] = []

    # ------------------------------------------------------------------------------- before the run
    def check(self, config: dict, *, resume: bool, facts: Mapping[str, Any] | None = None) -> None:
        """Read only, on every process. Not ``resume``: refuse a folder that holds a run. ``resume``:
        refuse when a fact in ``facts`` (e.g. ``{"engine": "trl"}``) differs from the saved one, or the
        saved config differs from ``config`` (``settings_check``). Nothing saved: nothing to compare."""
        if not resume:
            if (self.out / METRICS).exists():
                raise OutputExistsError(f"{self.option} {self.out} already holds a run ({METRICS}); pass --resume "
                                        f"to continue it, or choose another {self.option}")
            return
        saved, old_facts, legacy = self._saved()
        for key, value in (facts or {}).items():
            if key in old_facts and old_facts[key] != value:
                raise OutputExistsError(f"--resume: {self.out} was run with {key} {old_facts[key]!r}, not {value!r}; "
                                        f"resume it with the same {key}, or start a new run in another {self.option}")
        if saved is not None:
            self.settings_check(saved, {**config, **legacy}, self.out)

    def saved_facts(self) -> dict[str, Any]:
        """The facts of the run in the folder (``run.yaml``, or an old folder's legacy keys); ``{}`` if none."""
        return self._saved()[1]

    def _saved(self) -> tuple[Path | None, dict[str, Any], dict[str, Any]]:
        """(the saved config file or None, the saved facts, the legacy fact keys of the saved config)."""
        path = next((self.out / n for n in (CONFIG, "config.json") if (self.out / n).is_file()), None)
        if (self.out / FACTS).is_file():
            return path, read_yaml(self.out / FACTS), {}
        if path is None:
            return None, {}, {}
        old = read_yaml(path)
        legacy = {k: old[k] for k in LEGACY_FACTS if k in old}
        return path, {LEGACY_FACTS[k]: v for k, v in legacy.items()}, legacy

    def open(self, config: dict, *, facts: Mapping[str, Any] | None = None, loggers: Sequence[str] = (),
             name: str | None = None) -> None:
        """Create the folder, write ``config.yaml`` and ``run.yaml``, open the metric ``loggers``
        (:func:`sarl.train.loggers.make_loggers`, the run named ``name``, default the folder's name)."""
        self.loggers = []
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / CONFIG, yaml.safe_dump(config, sort_keys=False))
        write_text_atomic(self.out / FACTS, yaml.safe_dump(dict(facts or {}), sort_keys=False))
        if loggers:
            from sarl.train.loggers import make_loggers

            self.loggers = make_loggers(list(loggers), self.out, config, name=name or self.out.name)

    # ------------------------------------------------------------------------------- during the run
    def truncate(self, step: int) -> None:
        """On resume from the checkpoint of ``step``: keep the log rows of steps ``<= step``."""
        if self.main:
            truncate_steps(self.out / METRICS, step)
            truncate_steps(self.out / SAMPLES, step)

    def record(self, metrics: dict[str, Any]) -> None:
        """One ``metrics.jsonl`` row, and the same metrics to every logger at ``metrics["step"]``."""
        if not self.main:
            return
        append_jsonl(self.out / METRICS, [metrics])
        for logger in self.loggers:
            logger.log(metrics, metrics["step"])

    def write_samples(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows of :func:`sample_rows` to ``samples.jsonl``."""
        rows = list(rows)
        if self.main and rows:
            append_jsonl(self.out / SAMPLES, rows)

    def close(self) -> None:
        """Close the loggers (the JSONL files are closed after every write)."""
        for logger in self.loggers:
            logger.close()
        self.loggers = []


def _number(v: Any) -> float | None:
    return None if v is None else float(v)


def sample_rows(step: int, questions: Sequence[str], golds: Sequence[Any], responses: Sequence[str],
                lengths: Sequence[int], rewards: Sequence[float], components: Mapping[str, Sequence[float | None]],
                k: int) -> list[dict[str, Any]]:
    """The first ``k`` rollouts of a step in the one ``samples.jsonl`` layout: ``step``, ``question``,
    ``gold``, ``response``, ``length`` (tokens, the stop token included), ``reward`` (the total) and
    ``reward/<name>`` (each reward's unweighted value; ``None`` where unknown)."""
    return [{"step": step, "question": questions[i], "gold": golds[i], "response": responses[i],
             "length": int(lengths[i]), "reward": float(rewards[i]),
             **{f"reward/{name}": _number(v[i]) for name, v in components.items()}}
            for i in range(min(k, len(responses)))]
