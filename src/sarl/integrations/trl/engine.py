"""``sarl train RECIPE --engine trl``: a sarl recipe trained by TRL's ``GRPOTrainer`` (through
:func:`~sarl.integrations.trl.grpo_config`), with sarl's data, prompts, rewards, run folder and export.

One process on a CPU; ``accelerate launch --num_processes N -m sarl train RECIPE --engine trl`` for
several (TRL and accelerate do the data parallelism; the global batch is the recipe's). What the run
folder holds, as with the native trainer: ``config.yaml`` (the resolved recipe, checked on ``--resume``),
``metrics.jsonl`` (one row per sarl step: ``step``, ``accuracy``, ``reward/mean``,
``response_length/mean``, ``kl/ref``, ``actor/entropy`` and every TRL metric under ``trl/``),
``samples.jsonl`` (``trainer.log_samples`` scored rollouts per step), TRL's ``checkpoint-N`` folders
and the final model in ``final`` (safetensors, as ``sarl train``). Validation does not run during training: evaluate the export
with ``sarl eval``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from sarl.config import TrainConfig, to_dict
from sarl.errors import OutputExistsError, SarlError


def trl_rows(cfg: TrainConfig, tokenizer) -> list[dict[str, Any]]:
    """The training set as TRL rows: ``prompt`` (system + user messages, the user turn being the question
    and the recipe's instruction, exactly the prompt ``sarl train`` renders), ``answer``, ``data_source``,
    ``metadata`` (JSON) and ``id``. A prompt longer than ``data.max_prompt_length`` is refused, naming the
    problem (TRL 1.16 has no prompt limit; the native trainer cuts from the left)."""
    from sarl.data import load_dataset
    from sarl.data.prompts import get_instruction
    from sarl.prompts import encode, render_chat, user_message

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
        rows.append({"prompt": [{"role": "system", "content": d.system_prompt}, {"role": "user", "content": user}],
                     "answer": p.answer, "data_source": p.data_source, "metadata": json.dumps(p.metadata),
                     "id": p.id})
    return rows


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


def _model_folder(name: str | None, out: Path) -> tuple[str, Any]:
    """A local folder holding the policy (TRL loads the policy and the reference from it) and its
    tokenizer. Built-in models that live only in memory (tiny-random) are written to ``out/init_model``."""
    from sarl.models import TINY_RANDOM, load_model, load_tokenizer, resolve_model_path
    from sarl.train.checkpoint import export_model

    if name == TINY_RANDOM:
        lm = load_model(name, dtype="float32", device="cpu")
        folder = out / "init_model"
        if not folder.exists():
            export_model(lm.model, lm.tokenizer, folder)
        return str(folder), lm.tokenizer
    path = resolve_model_path(name, False)
    return str(path), load_tokenizer(str(path))  # only the tokenizer here: TRL loads the weights itself


def train_trl(cfg: TrainConfig, resume: bool = False, console=None,
              on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train ``cfg`` with TRL; returns the last ``metrics.jsonl`` row plus ``final_model``."""
    from datasets import Dataset
    from transformers import TrainerCallback

    from sarl.integrations.trl import SARGRPOTrainer
    from sarl.integrations.trl.recipe import grpo_config
    from sarl.models import set_threads
    from sarl.train.checkpoint import check_resume_settings, export_model

    out = Path(cfg.trainer.out_dir)
    metrics_path = out / "metrics.jsonl"
    if not resume and metrics_path.exists():
        raise OutputExistsError(f"trainer.out_dir {out} already holds a run (metrics.jsonl); pass --resume to "
                                "continue it, or choose another trainer.out_dir")
    if resume:
        check_resume_settings(out / "config.yaml", to_dict(cfg), out)
    # transformers 5 renames gradient_checkpointing; TRL 1.16 still calls the old names (noise, not a problem)
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.*deprecated", category=FutureWarning)
    args, funcs = grpo_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    set_threads(cfg.model.threads)
    model_path, tok = _model_folder(cfg.model.name, out)
    rows = trl_rows(cfg, tok)
    (out / "config.yaml").write_text(yaml.safe_dump({**to_dict(cfg), "engine": "trl"}, sort_keys=False))
    per_batch = args.max_steps // cfg.trainer.total_steps  # optimizer steps per sarl step
    trainer = SARGRPOTrainer(model=model_path, processing_class=tok, args=args,
                             train_dataset=Dataset.from_list(rows), reward_funcs=funcs)
    last: dict[str, Any] = {}
    samples = out / "samples.jsonl"
    n_samples = cfg.trainer.log_samples

    class SarlLog(TrainerCallback):
        def on_log(self, _args, state, control, logs=None, **kw):
            if not logs or "reward" not in logs or not state.is_world_process_zero:
                return
            row = sarl_row(logs, math.ceil(state.global_step / per_batch))
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rec = funcs[0].last_batch
            if n_samples and rec is not None:
                with samples.open("a") as f:
                    for i in range(min(n_samples, len(rec["completions"]))):
                        f.write(json.dumps({"step": row["step"], "question": rec["prompts"][i][-1]["content"],
                                            "response": rec["completions"][i],
                                            funcs[0].__name__: rec["values"][i]}) + "\n")
            last.clear()
            last.update(row)
            if on_step is not None:
                on_step(row)

    trainer.add_callback(SarlLog())
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):  # sarl prints one line per step and its own progress bar
        trainer.remove_callback(cb)
    if console is not None:
        console.print(f"[dim]TRL GRPOTrainer: loss_type={args.loss_type} scale_rewards={args.scale_rewards} "
                      f"beta={args.beta} G={args.num_generations} generation batch={args.generation_batch_size} "
                      f"{args.max_steps} optimizer steps; validation: run sarl eval on the export[/dim]")
    trainer.train(resume_from_checkpoint=True if resume else None)
    final = out / "final"
    if trainer.accelerator.is_main_process:
        model = trainer.accelerator.unwrap_model(trainer.model)
        export_model(model, tok, final)
    return {**last, "final_model": str(final)}
