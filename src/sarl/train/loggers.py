"""Where ``sarl train`` sends its per-step metrics (``trainer.logger``, as in verl): ``console`` (the
command's own step lines), ``tensorboard``, ``wandb``, ``mlflow`` and ``trackio``, each optional.
``metrics.jsonl`` in the run folder is always written; the others are extra sinks.

Offline by default, like the rest of sarl: wandb runs in ``offline`` mode (files under
``<out_dir>/wandb``; ``wandb sync`` uploads them later) unless ``WANDB_MODE`` says otherwise; mlflow writes
to a local SQLite store ``<out_dir>/mlflow.db`` unless ``MLFLOW_TRACKING_URI`` is set; trackio writes its
local database to ``<out_dir>/trackio`` unless ``TRACKIO_DIR`` is set (and never to a Space unless asked). A chosen logger whose package is missing is an error that
names the pip command, before any model loads.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from sarl.errors import ConfigError

LOGGERS = ("console", "tensorboard", "wandb", "mlflow", "trackio")
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
             "mlflow": ("mlflow", "mlflow-skinny sqlalchemy alembic"), "trackio": ("trackio", "trackio")}


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "step"}


class MetricLogger:
    """One sink: ``log(metrics, step)`` after every step, ``close()`` at the end."""

    def log(self, metrics: dict[str, Any], step: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class TensorBoardLogger(MetricLogger):
    def __init__(self, out: Path, **_):
        from torch.utils.tensorboard import SummaryWriter

        self.w = SummaryWriter(str(out / "tensorboard"))

    def log(self, metrics, step):
        for k, v in _numbers(metrics).items():
            self.w.add_scalar(k, v, step)
        self.w.flush()

    def close(self):
        self.w.close()


class WandbLogger(MetricLogger):
    def __init__(self, out: Path, config: dict, name: str, **_):
        import wandb

        self.run = wandb.init(project="sarl", name=name, dir=str(out), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="finish_previous")

    def log(self, metrics, step):
        self.run.log(_numbers(metrics), step=step)

    def close(self):
        self.run.finish()


class MlflowLogger(MetricLogger):
    def __init__(self, out: Path, config: dict, name: str, **_):
        import mlflow

        if not os.environ.get("MLFLOW_TRACKING_URI"):  # a local SQLite store in the run folder
            mlflow.set_tracking_uri(f"sqlite:///{(out / 'mlflow.db').resolve()}")
        mlflow.set_experiment("sarl")
        self.mlflow = mlflow
        self.run = mlflow.start_run(run_name=name)
        from sarl.io import flat_settings

        params = {k: str(v)[:250] for k, v in flat_settings(config).items()}
        mlflow.log_params(params)

    def log(self, metrics, step):
        self.mlflow.log_metrics({k.replace("@", "_at_"): v for k, v in _numbers(metrics).items()}, step=step)

    def close(self):
        self.mlflow.end_run()


class TrackioLogger(MetricLogger):
    def __init__(self, out: Path, config: dict, name: str, **_):
        import sys

        if "TRACKIO_DIR" not in os.environ and "trackio" not in sys.modules:  # read once, when trackio loads
            os.environ["TRACKIO_DIR"] = str((out / "trackio").resolve())
        import trackio

        self.trackio = trackio
        trackio.init(project="sarl", name=name, config=config, embed=False, auto_log_cpu=False, auto_log_gpu=False)

    def log(self, metrics, step):
        self.trackio.log(_numbers(metrics), step=step)

    def close(self):
        self.trackio.finish()


_CLASSES = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger, "mlflow": MlflowLogger, "trackio": TrackioLogger}


def check_loggers(names: list[str]) -> None:
    """Every chosen logger is known and its package installed (called when the config is built and
    before the model loads)."""
    for n in names:
        if n not in LOGGERS:
            raise ConfigError(f"trainer.logger: {n!r} is not a logger; choose from {', '.join(LOGGERS)}")
        if n in _PACKAGES and importlib.util.find_spec(_PACKAGES[n][0]) is None:
            raise ConfigError(f"trainer.logger: {n!r} needs the {_PACKAGES[n][1]} package: pip install {_PACKAGES[n][1]}")


def run_loggers(trainer) -> list[str]:
    """The sinks a training run opens (``trainer`` is a config's ``trainer`` section): ``trainer.logger``,
    without ``tensorboard`` when ``trainer.tensorboard`` is false."""
    return [n for n in trainer.logger if n != "tensorboard" or trainer.tensorboard]


def make_loggers(names: list[str], out: Path, config: dict, name: str) -> list[MetricLogger]:
    """The sinks for ``trainer.logger`` (``console`` is the command's own output, so it adds none)."""
    check_loggers(names)
    return [_CLASSES[n](out=out, config=config, name=name) for n in dict.fromkeys(names) if n in _CLASSES]
