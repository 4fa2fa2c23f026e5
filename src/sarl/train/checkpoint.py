"""Checkpoints that survive a SIGKILL at any moment.

A checkpoint is written into ``<root>/.tmp-step_N`` and renamed to ``<root>/step_N`` only when every
file (and the ``complete.json`` marker) is on disk, so a reader never sees half a checkpoint. The last
``keep_last`` complete checkpoints are kept. Contents: the policy as safetensors (a plain HF folder),
the critic's weights (safetensors), optimizer / scheduler / RNG states (``torch.save``, loaded with
``weights_only=True``), the data position and the resolved config.

Damage after the write (a truncated or overwritten file) is caught on resume: ``complete.json``, written
last, records every file's size and sha256, and :func:`latest_good_checkpoint` skips a checkpoint whose
files differ (it costs one read of the checkpoint: ~1 s per GB with SHA-NI, less than the write and its
fsync). Checkpoints written before the checksums (``complete.json`` holds only the step) are trusted as
they are; a file of theirs that cannot be read is a :class:`CheckpointError` naming it. A write that fails
part-way (no space left) removes its temporary folder and raises :class:`CheckpointError`; the checkpoints
already written stay as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sarl.errors import SarlError

_STEP_DIR = re.compile(r"^step_(\d+)$")
_MARKER = "complete.json"


class CheckpointError(SarlError, OSError):
    """A checkpoint that could not be written or read back; the message names the folder or file and the
    cause."""


def _write_errors() -> tuple[type[BaseException], ...]:
    """How a failed write shows: ``OSError`` (Python), ``RuntimeError`` (``torch.save``'s zip writer),
    ``SafetensorError`` (safetensors' writer, e.g. ``IoError(... code: 28 ...)`` for a full disk)."""
    from safetensors import SafetensorError

    return OSError, RuntimeError, SafetensorError


def _digest(path: Path, sync: bool = False) -> tuple[int, str]:
    """Size and sha256 of ``path``'s bytes; ``sync``: then fsync it (a file just written is read back from
    the page cache)."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 23):
            h.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(fh.fileno())
    return size, h.hexdigest()


def _seal(folder: Path, step: int) -> None:
    """fsync every file of ``folder``, then write ``complete.json`` (the step and each file's size and
    sha256) and fsync it: a folder with the marker has every byte on disk and says what they were."""
    files = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            size, digest = _digest(f, sync=True)
            files[f.relative_to(folder).as_posix()] = {"size": size, "sha256": digest}
    marker = folder / _MARKER
    marker.write_text(json.dumps({"step": step, "files": files}, indent=1))
    with open(marker, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def save_checkpoint(root: Path, step: int, *, policy, tokenizer, critic=None, state: dict[str, Any],
                    config_yaml: str, keep_last: int = 2, policy_state: dict | None = None) -> Path:
    """Write checkpoint ``step`` atomically; ``state`` holds optimizer/scheduler/rng/data states.
    ``policy_state``: the policy's full weights when the module holds only shards (FSDP). A write that
    fails (no space left, ...) removes ``.tmp-step_N`` and raises :class:`CheckpointError`; the complete
    checkpoints are untouched."""
    from safetensors.torch import save_file

    final = root / f"step_{step}"
    tmp = root / f".tmp-step_{step}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        policy.save_pretrained(tmp / "policy", state_dict=policy_state, safe_serialization=True)
        tokenizer.save_pretrained(tmp / "policy")
        if critic is not None:
            save_file({k: v.detach().contiguous() for k, v in critic.state_dict().items()},
                      str(tmp / "critic.safetensors"))
        torch.save(state, tmp / "trainer_state.pt")
        (tmp / "config.yaml").write_text(config_yaml)
        _seal(tmp, step)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(exc, _write_errors()):
            raise
        last = latest_checkpoint(root)
        raise CheckpointError(f"checkpoint of step {step}: writing {tmp} failed ({type(exc).__name__}: {exc}); "
                              f"removed it ({_free_space(root)}); the last complete checkpoint is "
                              f"{last or 'none'}: fix that (e.g. free some space) and continue with --resume") from exc
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free on that disk"
    except OSError:
        return "free space unknown"


def export_model(model, tokenizer, dest: Path, state_dict: dict | None = None) -> Path:
    """Write ``model`` and ``tokenizer`` as a plain HF folder (safetensors) at ``dest``, through a
    temporary sibling folder renamed into place, so ``dest`` is never half written (a failed write
    removes the temporary folder and raises :class:`CheckpointError`). ``state_dict``: the full weights
    when the module holds only shards (FSDP)."""
    tmp = dest.with_name(f".tmp-{dest.name}")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.replace(dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(exc, _write_errors()):
            raise
        raise CheckpointError(f"writing the model to {tmp} failed ({type(exc).__name__}: {exc}); removed it "
                              f"({_free_space(dest.parent)}); the model was not exported to {dest}") from exc
    return dest


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (half-written temporary folders are ignored)."""
    if not root.exists():
        return []
    found = []
    for d in root.iterdir():
        m = _STEP_DIR.match(d.name)
        if m and (d / "complete.json").exists():
            found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The newest checkpoint with a ``complete.json`` marker, unverified (see :func:`latest_good_checkpoint`)."""
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


def checkpoint_problem(ckpt: Path) -> str | None:
    """Why ``ckpt`` cannot be trusted, or ``None``: a file that ``complete.json`` lists is missing, or has
    another size or sha256 than when it was written (sizes are compared first, without reading the files).
    A checkpoint written before the checksums (a marker with the step alone) is trusted as it is."""
    try:
        marker = json.loads((ckpt / _MARKER).read_text())
        step, files = int(marker["step"]), marker.get("files")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{_MARKER}: unreadable ({type(exc).__name__}: {exc})"
    m = _STEP_DIR.match(ckpt.name)
    if m and int(m.group(1)) != step:
        return f"{_MARKER}: says step {step}"
    for rel, rec in (files or {}).items():
        f = ckpt / rel
        if not f.is_file():
            return f"{rel}: missing"
        if f.stat().st_size != rec["size"]:
            return f"{rel}: {f.stat().st_size} bytes, {rec['size']} when written"
    for rel, rec in (files or {}).items():
        if _digest(ckpt / rel)[1] != rec["sha256"]:
            return f"{rel}: its bytes changed since it was written (sha256 differs)"
    return None


def latest_good_checkpoint(root: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest intact checkpoint under ``root`` (:func:`checkpoint_problem`; ``None`` if none) and the
    newer damaged ones it skipped, each with its problem, newest first. Only the checkpoints down to the
    first intact one are read."""
    damaged: list[tuple[Path, str]] = []
    for ckpt in reversed(list_checkpoints(root)):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt, damaged
        damaged.append((ckpt, problem))
    return None, damaged


def set_aside(ckpt: Path) -> Path:
    """Rename a damaged checkpoint ``step_N`` to ``step_N.damaged`` (replacing an older one of that name),
    so that it is kept for inspection but never counts as one of the ``keep_last`` checkpoints."""
    dest = ckpt.with_name(f"{ckpt.name}.damaged")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(ckpt, dest)
    return dest


def no_intact_checkpoint(root: Path, damaged: list[tuple[Path, str]]) -> CheckpointError:
    """The ``--resume`` error when no checkpoint under ``root`` is intact, naming each damaged one and why."""
    return CheckpointError(f"--resume: no intact checkpoint under {root}"
                           + "".join(f"; {d.name}: {why}" for d, why in damaged))


def set_aside_damaged(damaged: list[tuple[Path, str]], resumed_from: str, say) -> None:
    """:func:`set_aside` each damaged checkpoint that :func:`latest_good_checkpoint` skipped, and ``say``
    which, why and where it went (``sarl train`` and ``sarl sft`` on ``--resume``)."""
    for d, why in damaged:
        moved = set_aside(d)
        say(f"--resume: {d} is damaged ({why}); moved to {moved.name}, resuming from {resumed_from}")


def _read(path: Path, load):
    """``load(path)``, with a file that cannot be parsed (truncated, overwritten) reported as a
    :class:`CheckpointError` that names it."""
    try:
        return load(path)
    except Exception as exc:  # torch.load: RuntimeError, EOFError, UnpicklingError; safetensors: SafetensorError
        raise CheckpointError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); the checkpoint holding it is "
                              "damaged: move that step_N folder aside to resume from an earlier one") from exc


def load_state(ckpt: Path) -> dict[str, Any]:
    return _read(ckpt / "trainer_state.pt", lambda x: torch.load(x, weights_only=True))


def load_critic_weights(critic, ckpt: Path) -> None:
    from safetensors.torch import load_file

    critic.load_state_dict(_read(ckpt / "critic.safetensors", lambda x: load_file(str(x))))


def policy_training_state(policy, optimizer, sharded: bool) -> tuple[dict | None, dict, str]:
    """What a checkpoint stores of the policy and its AdamW, on every process (gathering a sharded
    policy is a collective): ``(weights, optimizer_state, optimizer_format)``. Unsharded, ``weights`` is
    ``None`` (the module's own tensors are written) and the optimizer state is torch's, by parameter
    index; sharded, both are gathered in full and the optimizer state is keyed by parameter name."""
    if not sharded:
        return None, optimizer.state_dict(), "by_index"
    from sarl.train.sharding import full_optimizer_state, full_state_dict

    return full_state_dict(policy), full_optimizer_state(policy, optimizer), "by_name"


def load_policy_weights(ckpt: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in sorted((ckpt / "policy").glob("*.safetensors")):
        sd.update(_read(f, lambda x: load_file(str(x))))
    return sd


def restore_policy_training_state(policy, optimizer, ckpt: Path, state: dict[str, Any], sharded: bool) -> None:
    """Load a checkpoint's policy weights and AdamW state into ``policy`` and ``optimizer``; a checkpoint
    written sharded is refused by an unsharded run, and the reverse (their optimizer states differ)."""
    from sarl.errors import ConfigError

    by_name = state.get("optimizer_format") == "by_name"
    if by_name != sharded:
        how = ("sharded optimizer state; resume it with trainer.strategy=fsdp and several processes" if by_name
               else "unsharded optimizer state; resume it with trainer.strategy=ddp or with one process")
        raise ConfigError(f"--resume: {ckpt} holds {how}")
    sd = load_policy_weights(ckpt)
    if sharded:
        from sarl.train.sharding import load_full_state_dict, load_optimizer_state

        try:
            load_full_state_dict(policy, sd)
        except RuntimeError as exc:
            raise RuntimeError(f"{ckpt}: {exc}") from None
        load_optimizer_state(policy, optimizer, state["optimizer"])
        return
    missing, unexpected = policy.load_state_dict(sd, strict=False)
    bad = [k for k in missing if "lm_head" not in k] + list(unexpected)
    if bad:
        raise RuntimeError(f"{ckpt}: policy weights do not match the model ({bad[:3]}...)")
    if policy.config.tie_word_embeddings:
        policy.tie_weights()
    optimizer.load_state_dict(state["optimizer"])


@dataclass
class TrainingState:
    """Everything a checkpoint saves and restores besides the resolved config, in one place: the policy
    (weights and AdamW state, gathered in full when ``sharded``), its learning-rate schedule, the critic
    with its AdamW and schedule (PPO), the data stream's position, the RNG states, the step and the
    count of consecutive non-finite steps. ``trainer_state.pt`` holds the keys ``step``, ``optimizer``,
    ``optimizer_format``, ``scheduler``, ``data``, ``rng``, ``bad_steps`` and, with a critic,
    ``critic_optimizer`` and ``critic_scheduler``; the weights are safetensors beside it."""

    policy: Any
    optimizer: Any
    scheduler: Any
    data: Any  # sarl.train.stream.DataStream
    critic: Any = None
    critic_optimizer: Any = None
    critic_scheduler: Any = None
    sharded: bool = False
    step: int = 0
    bad_steps: int = 0

    def save(self, root: Path, *, tokenizer, config_yaml: str, keep_last: int, main: bool = True) -> Path | None:
        """Write checkpoint ``step`` under ``root``; called on every process (a sharded policy is gathered
        first, a collective), written by ``main`` alone, which returns the folder (the others ``None``)."""
        weights, optimizer, fmt = policy_training_state(self.policy, self.optimizer, self.sharded)
        if not main:
            return None
        state = {"step": self.step, "optimizer": optimizer, "optimizer_format": fmt,
                 "scheduler": self.scheduler.state_dict(), "data": self.data.state(), "rng": rng_state(),
                 "bad_steps": self.bad_steps}
        if self.critic_optimizer is not None:
            state["critic_optimizer"] = self.critic_optimizer.state_dict()
            state["critic_scheduler"] = self.critic_scheduler.state_dict()
        return save_checkpoint(root, self.step, policy=self.policy, tokenizer=tokenizer, critic=self.critic,
                               state=state, config_yaml=config_yaml, keep_last=keep_last, policy_state=weights)

    def restore(self, ckpt: Path) -> None:
        """Load every saved key from ``ckpt`` into the objects this state holds (on every process)."""
        st = load_state(ckpt)
        restore_policy_training_state(self.policy, self.optimizer, ckpt, st, sharded=self.sharded)
        if self.critic is not None:
            load_critic_weights(self.critic, ckpt)
        self.scheduler.load_state_dict(st["scheduler"])
        if self.critic_optimizer is not None:
            self.critic_optimizer.load_state_dict(st["critic_optimizer"])
            self.critic_scheduler.load_state_dict(st["critic_scheduler"])
        self.step = int(st["step"])
        self.data.load_state(st["data"])
        self.bad_steps = int(st.get("bad_steps", 0))
        set_rng_state(st["rng"])


# Settings a resumed run may change: they do not change what the run computes.
RESUME_MAY_CHANGE = ("model.threads", "trainer.save_every", "trainer.keep_last", "trainer.tensorboard",
                     "trainer.max_bad_steps", "trainer.val_every", "trainer.log_samples")


def _setting_defaults() -> dict[str, Any]:
    """Every scalar training setting (``section.field``) and its default; mapping-valued settings
    (``rewards.weights``, ``rewards.options``) are left out (their keys are the user's)."""
    import dataclasses

    from sarl.config import TrainConfig

    out: dict[str, Any] = {}

    def walk(obj, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            elif not isinstance(value, dict):
                out[f"{prefix}{f.name}"] = value

    walk(TrainConfig(), "")
    return out


def check_resume_settings(saved: Path, config: dict, out: Path) -> None:
    """A resumed run never mixes steps made with different settings: compare the run's saved
    ``config.yaml`` with the resolved ``config`` (except :data:`RESUME_MAY_CHANGE`). A run may be
    extended (``trainer.total_steps`` raised) only when nothing depends on the run length: a constant
    reward-weight schedule and a constant learning rate."""
    import yaml

    from sarl.errors import OutputExistsError
    from sarl.io import flat_settings, settings_diff

    if not saved.exists():
        return
    now = flat_settings(config)
    length_free = now.get("rewards.schedule.type") == "constant" and now.get("actor.lr_schedule") == "constant"
    ignore = RESUME_MAY_CHANGE + (("trainer.total_steps",) if length_free else ())
    before = flat_settings(yaml.safe_load(saved.read_text()) or {})
    for key, value in _setting_defaults().items():  # a setting added after the run was saved: the run had
        if key in now:  # its default (new settings default to the behaviour before them)
            before.setdefault(key, value)
    diff = settings_diff(before, now, ignore=ignore)
    if diff:
        raise OutputExistsError(f"--resume: {out} was trained with other settings ({diff}); resume with the same "
                                "recipe and overrides, or start a new run in another trainer.out_dir (or --overwrite)")
