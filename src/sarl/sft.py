"""Supervised fine-tuning (``sarl sft``): the warm start before RL.

Each example is a question and a response. The prompt is rendered exactly as training and evaluation
render it (:func:`sarl.prompts.render_prompt`: system prompt, question, optional instruction, chat
template); the response follows it and ends with the EOS token. The loss is the mean cross-entropy over
response tokens only (prompt and padding positions are masked), so SFT teaches what RL later samples.

Data: a JSONL/Parquet/CSV file with question and response columns (``--question-key``,
``--response-key``; dotted keys reach into nested rows), or ``synthetic``: the built-in corpus of
:mod:`sarl.data.synthetic`, problems per task (``synthetic_tasks``, ``sarl sft --synthetic
synth_chain_v2=12000``; default arithmetic and logic) with solutions in a mix of styles.
``synth_chain_v2`` (:mod:`sarl.data.synthetic_v2`) draws its SFT problems from its own ``sft`` split,
apart from its RL problems; the other tasks from their ``train`` split, which RL trains on too.

Model: any model ``sarl`` loads, or a new Llama (``new_model="layers=4,hidden=128,heads=4"``) for the
default tokenizer or for a small tokenizer trained on the corpus (``new_tokenizer=1024``,
:mod:`sarl.tokenizer`). Optimiser AdamW with linear warmup and cosine decay, gradient
clipping; checkpoints (atomic, keep-last-K) every ``save_every`` steps and ``--resume`` continues
from the last one with the same data order; the result is a plain HF folder ``<out>/model``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sarl.errors import ConfigError, OutputExistsError, SarlError
from sarl.io import DataError, get_key, read_rows, settings_diff, write_json_atomic
from sarl.settings import Settings, names_in, non_negative, positive, setting

# The built-in corpus: problems per task (the logic training split holds ~1,870 distinct problems).
DEFAULT_SYNTHETIC_TASKS = {"synth_arith": 6000, "synth_logic": 1500}


def parse_task_counts(text: str) -> dict[str, int]:
    """``"synth_arith=6000,synth_logic=1500"`` → ``{"synth_arith": 6000, "synth_logic": 1500}``;
    anything else raises ``ValueError`` naming the bad part."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit():
            raise SarlError(f"synthetic corpus: expected task=count[,task=count], got {part!r}")
        out[name.strip()] = int(count)
    _check_tasks(out)
    return out


def _check_tasks(tasks: dict[str, int]) -> None:
    from sarl.data.synthetic import ALL_TASKS

    for name in tasks:
        if name not in ALL_TASKS:
            raise SarlError(f"synthetic corpus: unknown task {name!r}; choose from: {', '.join(ALL_TASKS)}")


def _synthetic_tasks(key: str, value: dict[str, int]) -> None:
    try:
        _check_tasks(value)
    except SarlError as e:
        raise ConfigError(f"{key}: {e}") from None


def format_task_counts(tasks: dict[str, int]) -> str:
    """Inverse of :func:`parse_task_counts`."""
    return ",".join(f"{k}={v}" for k, v in tasks.items())


def _fraction(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key}: must be in [0, 1], got {value}")


def _style_mix(key: str, value: str | None) -> None:
    if value is not None:
        from sarl.data.synthetic import parse_style_mix

        try:
            parse_style_mix(value)
        except SarlError as e:
            raise ConfigError(f"{key}: {e}") from None


@dataclass
class SFTConfig(Settings):
    section = "sft"
    data: str = setting("synthetic", "A JSONL/Parquet/CSV file with question and response columns, or 'synthetic' "
                                     "(the built-in arithmetic + logic corpus).")
    synthetic_tasks: dict[str, int] = setting(
        help="For data=synthetic: problems per task (sarl.data.synthetic.ALL_TASKS; synth_chain_v2 draws from "
             "its SFT split, apart from its RL problems).",
        factory=lambda: dict(DEFAULT_SYNTHETIC_TASKS), cli=False, check=_synthetic_tasks)
    padded_fraction: float = setting(0.5, "For data=synthetic: share of solutions written padded (the rest "
                                          "concise); ignored with style_mix.", check=_fraction)
    style_mix: str | None = setting(None, "For data=synthetic: shares of solution styles, e.g. "
                                          "'concise=0.3,padded=0.3,shortcut=0.25,restated=0.15' (sarl.data.synthetic.STYLES).",
                                    check=_style_mix)
    question_key: str = setting("question", "Column with the question.")
    response_key: str = setting("response", "Column with the response to learn.")
    model: str | None = setting(None, "Model to fine-tune (None = the built-in default); ignored with new_model.")
    new_model: str | None = setting(None, "Start from a new Llama instead: layers=4,hidden=128,heads=4"
                                          "[,kv_heads=,intermediate=,seed=].")
    new_tokenizer: int | None = setting(None, "With new_model: train a byte-level BPE tokenizer of this many entries "
                                              "on the corpus instead of the default tokenizer (49,152 entries).",
                                        check=positive)
    instruction: str = setting("none", "Instruction appended to each question.", choices=names_in("sarl.prompts", "INSTRUCTIONS"))
    system_prompt: str | None = setting(None, "System prompt (None = sarl's default).")
    epochs: float = setting(1.0, "Passes over the corpus.", check=positive)
    batch_size: int = setting(32, "Examples per optimizer step.", check=positive)
    micro_batch_size: int | None = setting(None, "Examples per forward/backward: each batch is sorted by length and "
                                                 "split into micro-batches of at most this many (less padding; the "
                                                 "gradient is the whole batch's, accumulated over its response "
                                                 "tokens). None = the whole batch at once.", check=positive)
    lr: float = setting(1e-3, "AdamW peak learning rate (linear warm-up, then cosine decay to 0).", check=positive)
    weight_decay: float = setting(0.01, "AdamW weight decay.", check=non_negative)
    warmup_steps: int = setting(20, "Linear warm-up (optimizer steps).", check=non_negative)
    grad_clip: float = setting(1.0, "Max gradient norm.", check=positive)
    max_length: int = setting(384, "Longest example in tokens (longer is an error: it would be cut silently "
                                   "otherwise).", check=positive)
    seed: int = setting(0, "Seed of data order and initialisation.")
    out_dir: str = setting("runs/sft", "Output folder (the model in <out_dir>/model).", cli=False)
    save_every: int = setting(100, "Checkpoint every N steps (0 = never).", check=non_negative)
    keep_last: int = setting(1, "Checkpoints kept.", check=positive)
    threads: int | None = setting(None, "CPU threads for torch.", check=positive)
    precision: str = setting("auto", "fp32, or bf16-mixed (fp32 weights and AdamW, forwards under bf16 autocast); "
                                     "auto = bf16-mixed where it is faster (as trainer.precision).",
                             choices=("auto", "fp32", "bf16-mixed"))


def load_examples(cfg: SFTConfig) -> list[dict[str, str]]:
    """The (question, response) pairs; bad rows raise :class:`DataError` naming file, row and key."""
    if cfg.data == "synthetic":
        from sarl.data.synthetic import sft_rows

        rows = sft_rows(cfg.synthetic_tasks, cfg.padded_fraction, seed=cfg.seed, style_mix=cfg.style_mix)
        return [{"question": r["question"], "response": r["response"]} for r in rows]
    rows = read_rows(cfg.data)
    out = []
    for i, row in enumerate(rows):
        item = {}
        for name, key in (("question", cfg.question_key), ("response", cfg.response_key)):
            try:
                value = get_key(row, key)
            except KeyError:
                raise DataError(f"{cfg.data}: row {i + 1}: missing key {key!r} (the {name}; set it with "
                                f"--{name}-key)") from None
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{cfg.data}: row {i + 1}: {key!r} must be a non-empty string, got {value!r}")
            item[name] = value
        out.append(item)
    if not out:
        raise DataError(f"{cfg.data}: no rows")
    return out


def _render(cfg: SFTConfig, tokenizer, question: str) -> str:
    from sarl.prompts import DEFAULT_SYSTEM_PROMPT, get_instruction, render_prompt

    system = DEFAULT_SYSTEM_PROMPT if cfg.system_prompt is None else cfg.system_prompt
    return render_prompt(tokenizer, question, system, get_instruction(cfg.instruction))


def corpus_texts(tokenizer, examples: list[dict[str, str]], cfg: SFTConfig) -> list[str]:
    """Rendered prompt + response of every example: what a new tokenizer is trained on."""
    return [_render(cfg, tokenizer, ex["question"]) + ex["response"] for ex in examples]


def encode_examples(tokenizer, examples: list[dict[str, str]], cfg: SFTConfig) -> list[tuple[list[int], int]]:
    """``(prompt + response + EOS ids, prompt length)`` per example."""
    from sarl.prompts import encode

    out = []
    for i, ex in enumerate(examples):
        prompt = encode(tokenizer, _render(cfg, tokenizer, ex["question"]))
        ids = prompt + encode(tokenizer, ex["response"]) + [tokenizer.eos_token_id]
        if len(ids) > cfg.max_length:
            raise DataError(f"{cfg.data}: example {i + 1} has {len(ids)} tokens, more than max_length="
                            f"{cfg.max_length}; raise --max-length or shorten it")
        out.append((ids, len(prompt)))
    return out


def collate(batch: list[tuple[list[int], int]], pad_id: int):
    """Left-padded ``input_ids``, ``attention_mask``, ``position_ids`` and ``labels`` (-100 on prompt and
    padding); left padding puts every response at the end, so logits are needed only for the last
    ``keep`` positions (returned too): the LM head, the costliest layer of a small model with a large
    vocabulary, never runs on prompt tokens."""
    import torch

    from sarl.logprobs import left_pad

    input_ids, mask, positions = left_pad([ids for ids, _ in batch], pad_id)
    width = input_ids.shape[1]
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for r, (ids, n_prompt) in enumerate(batch):
        labels[r, width - len(ids) + n_prompt:] = torch.tensor(ids[n_prompt:])
    keep = max(len(ids) - n for ids, n in batch) + 1
    return input_ids, mask, positions, labels, keep


def response_loss(model, input_ids, mask, positions, labels, keep, precision: str = "fp32"):
    """Mean cross-entropy over response tokens (labels != -100), and the token count; the forward under
    ``precision``'s autocast, the loss in fp32."""
    import torch.nn.functional as F

    from sarl.precision import autocast

    with autocast(precision, str(input_ids.device)):
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
    logits = logits[:, :-1]
    target = labels[:, -keep + 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=-100)
    return loss, int((target != -100).sum())


def _batches(n: int, batch_size: int, epochs: float, seed: int) -> list[list[int]]:
    """The whole run's batches of example indices: one seeded shuffle per epoch, a fractional last epoch."""
    order: list[int] = []
    full = math.floor(epochs)
    for e in range(math.ceil(epochs)):
        perm = list(range(n))
        random.Random(f"sft-order-{seed}-{e}").shuffle(perm)
        order += perm if e < full else perm[:round((epochs - full) * n)]
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size) if order[i:i + batch_size]]


def _start_model(cfg: SFTConfig, ckpt: Path | None, examples: list[dict[str, str]]):
    """(model, tokenizer) to train: the checkpoint to resume, a new Llama (with a tokenizer trained on the
    corpus when ``new_tokenizer``), or the model named by ``cfg.model``."""
    from sarl.models import load_model, load_tokenizer, new_llama, parse_new_model_spec
    from sarl.tokenizer import train_tokenizer

    if ckpt is not None:
        lm = load_model(str(ckpt / "policy"), dtype="float32", device="cpu")
        return lm.model, lm.tokenizer
    if cfg.new_model:
        spec = parse_new_model_spec(cfg.new_model)
        tok = load_tokenizer(None)
        if cfg.new_tokenizer:
            tok = train_tokenizer(corpus_texts(tok, examples, cfg), cfg.new_tokenizer, template=tok)
        return new_llama(tok, **{"seed": cfg.seed, **spec}), tok
    lm = load_model(cfg.model, dtype="float32", device="cpu")
    return lm.model, lm.tokenizer


# Settings a resumed SFT run may change: they do not change what the run computes (threads and micro-batches
# only the order of floating-point sums).
SFT_MAY_CHANGE = ("threads", "save_every", "keep_last", "micro_batch_size")


def check_sft_settings(saved: Path, config: dict[str, Any], out: Path) -> None:
    """A resumed SFT run never mixes steps made with other settings (:data:`SFT_MAY_CHANGE` aside): the
    :class:`~sarl.run_folder.RunFolder` settings check of ``sarl sft``."""
    import yaml

    diff = settings_diff(yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, config, ignore=SFT_MAY_CHANGE)
    if diff:
        raise OutputExistsError(f"{out} holds results made with other settings ({diff}); resume with the same "
                                "settings, or start a new run in another -o (or --overwrite)")


def micro_batches(batch: list[tuple[list[int], int]], size: int | None) -> list[list[tuple[list[int], int]]]:
    """``batch`` sorted by length and cut into micro-batches of at most ``size`` examples, the longest
    last (so each pads only to its own longest); ``[batch]`` when ``size`` is None or covers it."""
    if size is None or size >= len(batch):
        return [batch]
    ordered = sorted(batch, key=lambda ex: len(ex[0]))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def _sft_step(model, opt, sched, batch: list[tuple[list[int], int]], pad_id: int, precision: str, grad_clip: float,
              step: int, micro_batch_size: int | None = None) -> dict[str, Any]:
    """One optimizer step on ``batch`` (:func:`sarl.train.update.optimizer_step`): the mean cross-entropy
    over the batch's response tokens, its gradient accumulated over :func:`micro_batches` (each
    micro-batch's mean weighted by its share of the tokens); a non-finite loss or gradient raises
    :class:`FloatingPointError`. Returns the step's loss, norm and token counts."""
    import torch

    from sarl.train.update import optimizer_step

    total = sum(len(ids) - n_prompt for ids, n_prompt in batch)  # response tokens (each ends with EOS: >= 1)
    opt.zero_grad(set_to_none=True)
    loss_value, tokens = 0.0, 0
    for part in micro_batches(batch, micro_batch_size):
        input_ids, mask, positions, labels, keep = collate(part, pad_id)
        loss, n_tok = response_loss(model, input_ids, mask, positions, labels, keep, precision)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"sft step {step}: loss is {loss.item()}; lower --lr")
        (loss * (n_tok / total)).backward()
        loss_value += loss.item() * n_tok / total
        tokens += int(mask.sum())
    gnorm, stepped = optimizer_step(model, opt, sched, grad_clip)
    if not stepped:
        raise FloatingPointError(f"sft step {step}: the gradient norm is {gnorm}; lower --lr")
    return {"loss": loss_value, "grad_norm": gnorm, "response_tokens": total, "tokens": tokens}


def _resume_checkpoint(root: Path, say: Callable[[str], None]) -> Path | None:
    """The newest intact checkpoint under ``root`` (``None`` when there is none at all); the newer damaged
    ones are set aside; damaged ones only raise :class:`~sarl.train.checkpoint.CheckpointError`."""
    from sarl.train.checkpoint import latest_good_checkpoint, no_intact_checkpoint, set_aside_damaged

    ckpt, damaged = latest_good_checkpoint(root)
    if damaged:
        if ckpt is None:
            raise no_intact_checkpoint(root, damaged)
        set_aside_damaged(damaged, ckpt.name, say)
    return ckpt


def run_sft(cfg: SFTConfig, *, resume: bool = False, on_step: Callable[[dict], None] | None = None,
            progress_factory=None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune and write ``<out_dir>/model``; returns the run summary (also ``summary.json``).
    ``progress_factory(description, total) -> update(done, total, tokens)`` shows progress (optional).
    ``resume`` continues from the newest intact checkpoint, as the trainer does: newer damaged ones are
    set aside as ``step_N.damaged`` (and ``say`` says so); none intact is an error.
    The run folder (:class:`~sarl.run_folder.RunFolder`): ``config.yaml`` (the settings), ``run.yaml``
    (``engine: sft`` and the resolved precision), ``metrics.jsonl``, checkpoints."""
    import torch
    import yaml

    from sarl.models import set_threads
    from sarl.precision import hidden_size, resolve_precision
    from sarl.run_folder import RunFolder
    from sarl.train.checkpoint import export_model, load_state, save_checkpoint
    from sarl.train.update import lr_lambda

    out = Path(cfg.out_dir)
    ckpt_root = out / "checkpoints"
    settings = asdict(cfg)
    run = RunFolder(out, option="-o", settings_check=check_sft_settings)
    ckpt = _resume_checkpoint(ckpt_root, say) if resume else None
    if not resume or ckpt is not None:  # resuming a run that never reached a checkpoint starts it over
        run.check(settings, resume=ckpt is not None, facts={"engine": "sft"})
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # sarl shows its own progress
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    examples = load_examples(cfg)
    model, tok = _start_model(cfg, ckpt, examples)
    model.train()
    precision = resolve_precision(cfg.precision, "cpu", hidden_size(model.config))
    facts = {"engine": "sft", "precision": precision}
    if ckpt is not None:  # never resume with other settings, nor another resolved precision
        run.check(settings, resume=True, facts=facts)
    data = encode_examples(tok, examples, cfg)
    batches = _batches(len(data), cfg.batch_size, cfg.epochs, cfg.seed)
    total = len(batches)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, total, "cosine"))
    start = 0
    if ckpt is not None:
        state = load_state(ckpt)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = state["step"]
    run.open(settings, facts=facts)
    run.truncate(start)
    n_params = sum(p.numel() for p in model.parameters())
    update = progress_factory("sft", total) if progress_factory is not None else None
    t0 = time.perf_counter()
    tokens_seen = 0
    last: dict[str, Any] = {}
    for step in range(start, total):
        done = _sft_step(model, opt, sched, [data[i] for i in batches[step]], tok.pad_token_id, precision,
                         cfg.grad_clip, step + 1, cfg.micro_batch_size)
        tokens_seen += done["tokens"]
        last = {"step": step + 1, "loss": done["loss"], "grad_norm": done["grad_norm"], "lr": sched.get_last_lr()[0],
                "response_tokens": done["response_tokens"], "tokens_per_s": tokens_seen / (time.perf_counter() - t0)}
        run.record(last)
        if on_step is not None:
            on_step(last)
        if update is not None:
            update(step + 1, total, tokens_seen)
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < total:
            save_checkpoint(ckpt_root, step + 1, policy=model, tokenizer=tok,
                            state={"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step + 1},
                            config_yaml=yaml.safe_dump(settings, sort_keys=False), keep_last=cfg.keep_last)
    run.close()
    model.eval()
    final = export_model(model, tok, out / "model")
    summary = {"model": str(final), "steps": total, "examples": len(data), "parameters": n_params, "precision": precision,
               "final_loss": last.get("loss"), "seconds": time.perf_counter() - t0}
    write_json_atomic(out / "summary.json", summary)
    return summary
