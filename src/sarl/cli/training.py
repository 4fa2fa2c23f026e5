"""``sarl train``, ``sarl sft`` and ``sarl quickstart``."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from sarl.cli.ui import HelpFormatter, console, out_console, progress_bar, task_factory
from sarl.errors import SarlError
from sarl.stats import Z95


def _advantage_line(m: dict) -> str:
    """`` adv share: correctness=0.93 sar=0.07 groups: all-correct=0.25 all-wrong=0.12`` where logged (a
    single reward's share is always 1 and is left out)."""
    shares = {k.removeprefix("adv/share/"): v for k, v in m.items() if k.startswith("adv/share/")}
    out = " adv share: " + " ".join(f"{k}={v:.2f}" for k, v in shares.items()) if len(shares) > 1 else ""
    if m.get("groups/all_correct") is not None:
        out += f" groups: all-correct={m['groups/all_correct']:.2f} all-wrong={m['groups/all_wrong']:.2f}"
    return out


def cmd_train(args) -> int:
    from sarl.config import load_config_with_notes
    from sarl.train import train

    if args.list:
        from sarl.config import list_recipes

        table = Table(title="shipped recipes (sarl train NAME)")
        table.add_column("name")
        table.add_column("description")
        for name, desc in list_recipes():
            table.add_row(name, desc)
        out_console.print(table)
        return 0
    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        recipe, overrides = None, [recipe, *overrides]  # no recipe: the first word was an override
    if recipe is None and not overrides:  # a bare `sarl train` would start a long default run
        return _usage_without_recipe()
    from sarl.config import TINY_OVERRIDES

    # verl's keys are translated there, once; --tiny shrinks the recipe only after it is validated as
    # written (its values used to replace bad ones unchecked), the user's overrides still winning
    cfg, notes = load_config_with_notes(recipe, overrides, shrink=TINY_OVERRIDES if args.tiny else ())
    for note in notes:
        console.print(f"[dim]{note}[/dim]")
    if args.overwrite:
        if args.resume:
            raise SarlError("--overwrite and --resume contradict each other; choose one")
        _remove_run(Path(cfg.trainer.out_dir), "metrics.jsonl")
    from sarl.train.distributed import launched_rank, launcher_strategy

    line = launch_line(strategy=launcher_strategy(cfg.trainer.strategy)[0], engine=args.engine)
    if line and launched_rank() == 0:
        console.print(line)
    t0 = time.perf_counter()
    if args.engine == "trl":
        return _train_trl(cfg, args.resume, t0)
    done = _nothing_to_train(cfg) if args.resume else None  # on every process: they all stop or all go on
    if done is not None:
        if launched_rank() == 0:
            out_console.print(done[0], markup=False, highlight=False)
        if done[1]:  # the final model is there: nothing to do
            return 0
    if launched_rank() != 0:  # torchrun / accelerate: rank 0 prints and logs
        train(cfg, resume=args.resume)
        return 0
    with progress_bar() as prog:
        task = prog.add_task("training", total=cfg.trainer.total_steps, rate="")

        def on_step(m):
            comps = " ".join(f"{k.split('/', 1)[1]}={v:.3f}" for k, v in m.items()
                             if k.startswith("reward/") and k not in ("reward/mean", "reward/alpha") and v is not None)
            kl = f" kl({m['kl/estimator']})={m['kl/ref']:.4f}" if m.get("kl/ref") is not None else ""
            val = f" val_acc={m['val/accuracy']:.3f}" if m.get("val/accuracy") is not None else ""
            stages = " ".join(f"{k[5:]}={v:.1f}s" for k, v in m.items() if k.startswith("time/") and k != "time/step")
            prog.console.print(
                f"step {m['step']}: reward={m['reward/mean']:.3f} ({comps}) acc={m['accuracy']:.3f} "
                f"len={m['response_length/mean']:.0f}{kl} entropy={m['actor/entropy']:.3f} "
                f"clipfrac={m['actor/clipfrac']:.3f}{val}{_advantage_line(m)} | {stages}")
            prog.update(task, completed=m["step"], rate=f"{(time.perf_counter() - t0) / m['step']:.0f} s/step")

        last = train(cfg, resume=args.resume, console=prog.console, on_step=on_step)
    out_console.print(f"final model: {last['final_model']}  (metrics: {cfg.trainer.out_dir}/metrics.jsonl)")
    return 0


def _train_trl(cfg, resume: bool, t0: float) -> int:
    """``--engine trl``: the recipe through TRL's GRPOTrainer (sarl.integrations.trl.engine)."""
    try:
        from sarl.integrations.trl.engine import train_trl
    except ImportError as exc:
        raise SarlError(f"--engine trl needs TRL: pip install 'sarl[trl]' ({exc})") from None
    with progress_bar() as prog:
        task = prog.add_task("training (TRL)", total=cfg.trainer.total_steps, rate="")

        def on_step(m):
            comps = " ".join(f"{k.split('/', 1)[1]}={v:.3f}" for k, v in m.items()
                             if k.startswith("reward/") and k != "reward/mean" and v is not None)
            extra = "".join(f" {label}={m[key]:.4f}" for key, label in (("kl/ref", "kl(k3)"), ("actor/entropy", "entropy"))
                            if m.get(key) is not None)
            prog.console.print(f"step {m['step']}: reward={m.get('reward/mean', float('nan')):.3f} ({comps}) "
                               f"acc={m.get('accuracy', float('nan')):.3f} "
                               f"len={m.get('response_length/mean', float('nan')):.0f}{extra}")
            prog.update(task, completed=m["step"], rate=f"{(time.perf_counter() - t0) / max(m['step'], 1):.0f} s/step")

        last = train_trl(cfg, resume=resume, console=prog.console, on_step=on_step)
    out_console.print(f"final model: {last['final_model']}  (metrics: {cfg.trainer.out_dir}/metrics.jsonl)")
    return 0


# --------------------------------------------------------------------------------------------- sft
def cmd_sft(args) -> int:
    from sarl.settings import from_args
    from sarl.sft import SFTConfig, parse_task_counts, run_sft

    cfg = from_args(SFTConfig, args, synthetic_tasks=parse_task_counts(args.synthetic), out_dir=str(args.output))
    if args.overwrite:
        if args.resume:
            raise SarlError("--overwrite and --resume contradict each other; choose one")
        _remove_run(args.output, "metrics.jsonl")
    with progress_bar() as prog:
        def on_step(m):
            if m["step"] % 50 == 0:
                prog.console.print(f"step {m['step']}: loss={m['loss']:.4f} lr={m['lr']:.2e} grad_norm={m['grad_norm']:.2f}")

        summary = run_sft(cfg, resume=args.resume, on_step=on_step, progress_factory=task_factory(prog),
                          say=prog.console.print)
    out_console.print(f"model: {summary['model']}  ({summary['parameters'] / 1e6:.1f}M parameters, "
                      f"{summary['steps']} steps, final loss {summary['final_loss']:.4f}, {summary['seconds']:.0f}s)")
    return 0


# -------------------------------------------------------------------------------------- quickstart
def cmd_quickstart(args) -> int:
    from sarl.quickstart import run_quickstart

    warm = args.model is None
    steps = args.steps if args.steps is not None else (80 if warm else 4)
    limit = args.limit if args.limit is not None else (200 if warm else 48)
    t0 = time.perf_counter()
    with progress_bar() as prog:
        res = run_quickstart(args.output, steps, limit, prog.console, task_factory(prog), args.overrides,
                             model=args.model, baseline=args.baseline)
    t = res["table"]
    table = Table(title=f"SA-GRPO quickstart: {res['dataset']}, {res['problems']} held-out problems, {res['decoding']}")
    styles = t["before"].get("style_shares") is not None
    cols = ["model", "accuracy (all samples) [95% CI]", "hit@1", "hit@n", "mean length (tokens)", "mean SAR", "truncated"]
    if styles:
        cols[2:2] = ["multi-step accuracy [95% CI]"]
        cols += ["concise", "padded", "shortcut", "restated"]
    for c in cols:
        table.add_column(c, justify="left" if c == "model" else "right")

    def ci(acc: float, se: float) -> str:
        return f"{acc * 100:.1f}% [{(acc - Z95 * se) * 100:.1f}, {(acc + Z95 * se) * 100:.1f}]"

    names = {"before": "before (warm start)" if warm else "before", "after": f"SA-GRPO (α = {res['alpha']:g})",
             "grpo": "GRPO"}
    for name in [n for n in ("before", "after", "grpo") if n in t]:
        m = t[name]
        cells = [names[name], ci(m["accuracy"], m["accuracy_se"]), f"{m['hit@1'] * 100:.1f}%",
                 f"{m['hit@n'] * 100:.1f}%", f"{m['mean_length']:.1f}", f"{m['mean_sar']:.3f}",
                 f"{m['truncation_rate'] * 100:.0f}%"]
        if styles:
            ms = m.get("multi_step_accuracy")
            cells[2:2] = [ci(ms["accuracy"], ms["accuracy_se"]) if ms else "–"]
            cells += [f"{m['style_shares'][s] * 100:.0f}%" for s in ("concise", "padded", "shortcut", "restated")]
        table.add_row(*cells)
    out_console.print(table)
    out_console.print(_change_line("SA-GRPO vs the warm start", t["change"]))
    if "sa_grpo_minus_grpo" in t:
        out_console.print(_change_line("[bold]SA-GRPO − GRPO[/bold] (what SAR adds)", t["sa_grpo_minus_grpo"]))
    out_console.print("One seed per run on one machine: seeds and floating-point paths move a run by a few points "
                      "(docs/RESULTS.md), so compare seeds before trusting a small difference.")
    out_console.print(f"report: {res['report']['html']}  trained model: {res['final_model']}  "
                      f"({time.perf_counter() - t0:.0f}s)")
    return 0


def _change_line(title: str, ch: dict) -> str:
    """``title: accuracy +x.x points [lo, hi] (verdict); length x.xx x``: an accuracy difference with its
    95% interval over problems and the length ratio."""
    kind = "paired over the same problems" if ch["paired"] else "unpaired"
    d, se = ch["accuracy_points"] * 100, ch["se"] * 100
    verdict = "within noise" if ch["within_noise"] else "outside the noise"
    return (f"{title}: accuracy {d:+.1f} points [{d - Z95 * se:+.1f}, {d + Z95 * se:+.1f}] ({verdict}, {kind}); "
            f"length {ch['length_ratio']:.2f}x")


def _remove_run(folder: Path, marker: str) -> None:
    """``--overwrite``: delete an earlier run's folder, only if it is one (it holds ``marker``)."""
    import shutil

    if folder.exists():
        if not (folder / marker).exists():
            raise SarlError(f"--overwrite: {folder} does not look like a run folder (no {marker}); remove it yourself")
        shutil.rmtree(folder)


def _usage_without_recipe() -> int:
    """A bare ``sarl train``: how to call it and the shipped recipes, instead of a long default run."""
    import sys

    from sarl.config import list_recipes

    names = ", ".join(name for name, _ in list_recipes())
    print("usage: sarl train RECIPE [key=value ...] [--tiny] [--resume] [--overwrite] [--engine {native,trl}]\n"
          "sarl train: error: no recipe given. RECIPE is a YAML file or a shipped recipe "
          f"(descriptions: sarl train --list): {names}.\n"
          "e.g. sarl train cpu/sa_grpo    (or `sarl train trainer.total_steps=10 ...` for the built-in defaults "
          "with overrides)", file=sys.stderr)
    return 2


def launch_line(env=None, strategy: str = "ddp", engine: str = "native") -> str | None:
    """What the launcher started, for rank 0 to print first: ``2 processes (torchrun), strategy ddp``;
    None for one process."""
    import os

    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE") or 1)
    if world <= 1:
        return None
    launcher = "accelerate launch" if "ACCELERATE_DYNAMO_BACKEND" in env else "torchrun"  # set by accelerate only
    how = f"strategy {strategy}" if engine == "native" else "TRL's data parallelism"
    return f"{world} processes ({launcher}), {how}; rank 0 logs, checkpoints and exports"


def _nothing_to_train(cfg) -> tuple[str, bool] | None:
    """``--resume`` when the latest checkpoint is already at (or past) ``trainer.total_steps``: the line
    that says so and whether the final model is already exported (then there is nothing to do at all;
    otherwise the trainer still exports it, training no step). None when there are steps to train or no
    checkpoint (the trainer then says what is missing)."""
    import json

    from sarl.train.checkpoint import latest_checkpoint, load_state

    out = Path(cfg.trainer.out_dir)
    ckpt = latest_checkpoint(out / "checkpoints")
    if ckpt is None:
        return None
    try:  # the marker of a complete checkpoint names its step; trainer_state.pt is the slow way
        step = int(json.loads((ckpt / "complete.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        step = int(load_state(ckpt)["step"])
    total = cfg.trainer.total_steps
    if step < total:
        return None
    final = out / "final"
    exported = final.is_dir()
    where = f"the final model is {final}" if exported else f"exporting it to {final}"
    line = (f"nothing to train: the latest checkpoint {ckpt} is at step {step} and trainer.total_steps is {total} "
            f"(raise trainer.total_steps to train longer); {where}")
    return line, exported


def register(sub) -> None:
    from sarl.settings import add_arguments
    from sarl.sft import DEFAULT_SYNTHETIC_TASKS, SFTConfig, format_task_counts

    q = sub.add_parser("quickstart", help="evaluate, train with SA-GRPO and GRPO, evaluate again, report (CPU minutes)",
                       formatter_class=HelpFormatter)
    q.add_argument("-o", "--output", type=Path, default=Path("runs/quickstart"), help="output folder (resumed)")
    q.add_argument("--model", default=None,
                   help="start from this model ('default' = SmolLM2-135M-Instruct, a folder, a hub id) on reasoning-gym "
                        "basic_arithmetic; without it: a warm start trained on the built-in synthetic corpus")
    q.add_argument("--steps", type=int, default=None, help="SA-GRPO training steps (default 80; 4 with --model)")
    q.add_argument("--limit", type=int, default=None, help="held-out evaluation problems (default 200; 48 with --model)")
    q.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="train SA-GRPO only (by default GRPO trains beside it from the same start, the baseline "
                        "SA-GRPO is compared with)")
    q.add_argument("overrides", nargs="*", help="dotted training overrides of both runs, e.g. rewards.weights.sar=0.3")
    q.set_defaults(func=cmd_quickstart)

    tr = sub.add_parser("train", help="RL training (GRPO / PPO) with SAR and baseline rewards",
                        formatter_class=HelpFormatter)
    tr.add_argument("recipe", nargs="?", default=None,
                    help="a YAML recipe file, or a shipped recipe by name (sa_grpo, cpu/sa_grpo; see --list)")
    tr.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rewards.weights.sar=0.3 trainer.total_steps=20")
    tr.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    tr.add_argument("--list", action="store_true", help="list the shipped recipes and exit")
    tr.add_argument("--overwrite", action="store_true", help="delete an earlier run in trainer.out_dir first")
    tr.add_argument("--tiny", action="store_true",
                    help="shrink the recipe consistently for a smoke test (2 steps of 2 prompts x 2 rollouts, 32-token "
                         "answers, 4 validation problems); other overrides still apply on top")
    tr.add_argument("--engine", choices=("native", "trl"), default="native",
                    help="native: sarl's trainer (GRPO, PPO, every key); trl: the recipe as TRL's GRPOConfig through "
                         "GRPOTrainer (GRPO recipes; keys TRL cannot express are refused; docs/TRL.md)")
    tr.set_defaults(func=cmd_train)

    sf = sub.add_parser("sft", help="supervised fine-tuning (warm start), e.g. on the built-in synthetic corpus",
                        formatter_class=HelpFormatter)
    sf.add_argument("data", nargs="?", default=SFTConfig.data, help=SFTConfig.__dataclass_fields__["data"].metadata["help"])
    sf.add_argument("-o", "--output", type=Path, default=Path(SFTConfig.out_dir),
                    help=SFTConfig.__dataclass_fields__["out_dir"].metadata["help"])
    sf.add_argument("--synthetic", default=format_task_counts(DEFAULT_SYNTHETIC_TASKS),
                    help="synthetic corpus: task=count,...")
    add_arguments(sf, SFTConfig, skip=("data",))
    sf.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    sf.add_argument("--overwrite", action="store_true", help="delete an earlier run in --output first")
    sf.set_defaults(func=cmd_sft)
