"""Accuracy-vs-length frontiers: SA-GRPO against the length penalties on ``synth_chain_v2``.

The paper's efficiency claim is a frontier claim: over a grid of weights, SA-GRPO's (length, accuracy)
points lie above those of O1-Pruner and Efficient Reasoner (ER). This script trains the grid and
measures it, on the confound-free task ``synth_chain_v2`` (:mod:`sarl.data.synthetic_v2`).

Pipeline (every stage resumes: rerun the same command after an interruption):

1. **warm starts**: ``sarl sft`` trains a new small Llama (4 layers, 128 wide, its own 1,024-entry
   tokenizer) on 12,000 ``synth_chain_v2`` SFT problems in four styles (concise, padded, shortcut,
   restated), one per SFT seed the design asks for;
2. **RL runs**, one per (arm, warm start, RL seed): identical except the reward. An arm is a method at a
   weight: ``grpo`` (correctness only), ``sar@α`` (SA-GRPO: + α·SAR), ``sar_gdpo@α`` (the same with
   decoupled per-reward normalisation, ``algorithm.reward_aggregation=normalize_then_sum``), ``o1@w``
   (+ w·O1-Pruner), ``er@w`` (+ w·ER). Dr.GRPO as the reference's recipe (``configs/cpu/quickstart.yaml``),
   on ``synth_chain_v2``'s RL split; checkpoints kept at the evaluation steps. Design ``losses`` compares
   GRPO with its policy-gradient variants instead, arms without a weight: ``ds`` (dynamic sampling),
   ``gspo``, ``cispo`` (each arm minus GRPO, and step times);
3. **evaluation** of each kept checkpoint on the design's split (``val`` for the pilot, ``test`` for the
   pre-registered run), greedy (the paper's protocol) and sampled (T=1, several samples per problem);
   slim per-sample rows (gzip JSON lines) under ``samples/``, training metrics under ``metrics/``;
4. **analysis** (``analyze``, pure: it reads only ``design.json``, ``samples/`` and ``metrics/``, so the
   committed copy under ``benchmarks/results/`` recomputes every number and figure): each arm's
   accuracy with a 95% interval over seeds (t) and problems, length, style shares; each SA arm against
   each length penalty's frontier at matched length; H1 for the frontier; ``results.json``,
   ``results.md``, ``frontier_<mode>.png``, ``curves.png``.

    python benchmarks/frontier.py run --design pilot -o runs/frontier_pilot     # validation pilot
    python benchmarks/frontier.py run --design test -o runs/frontier_test       # the pre-registered test
    python benchmarks/frontier.py analyze benchmarks/results/frontier_test      # recompute from committed data
    python benchmarks/frontier.py status runs/frontier_test                     # finished / in progress
    python benchmarks/frontier.py export runs/frontier_test benchmarks/results/frontier_test
    python benchmarks/frontier.py run --design test -o runs/frontier_test --seed-from benchmarks/results/frontier_test
    python benchmarks/frontier.py run --design losses -o runs/losses --seed-from benchmarks/results/frontier_test

``run`` trains on ``--workers`` processes (one torch thread each; the 2-core machine runs two) and ends
with ``analyze``. A design is fixed once a folder has one: a different design in the same folder is
refused, so a resumed run never mixes settings.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SFT_TASK = "synth_chain_v2"
RL_TASK = "synth_chain_v2"
SPLITS = {"val": "synth_chain_v2_val", "test": "synth_chain_v2_test"}
MODES = ("greedy", "sampled")
STYLES = ("concise", "padded", "shortcut", "restated", "other")
METHODS: dict[str, dict[str, Any]] = {
    "grpo": {"label": "GRPO", "reward": None},
    "sar": {"label": "SA-GRPO", "reward": "sar"},
    "sar_gdpo": {"label": "SA-GRPO + GDPO", "reward": "sar",
                 # GDPO divides each reward by its group std (so it needs norm_adv_by_std; the rest stays Dr.GRPO)
                 "overrides": ["algorithm.reward_aggregation=normalize_then_sum",
                               "algorithm.norm_adv_by_std_in_grpo=true"]},
    "o1": {"label": "O1-Pruner", "reward": "o1_pruner"},
    "er": {"label": "ER", "reward": "efficient_reasoner"},
    # correctness only, another policy-gradient setting (design "losses"): no weight
    "ds": {"label": "GRPO + dynamic sampling", "reward": None,
           "overrides": ["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"]},
    "gspo": {"label": "GSPO", "reward": None,  # the GSPO paper's (and TRL's docs') clip range
             "overrides": ["actor.policy_loss=gspo", "actor.clip_ratio_low=0.0003", "actor.clip_ratio_high=0.0004"]},
    "cispo": {"label": "CISPO", "reward": None,  # weight cap 5: ScaleRL's eps_max, TRL's recommended epsilon_high
              "overrides": ["actor.policy_loss=cispo", "actor.clip_ratio_high=4.0"]},
}
SAR_METHODS, PENALTIES = ("sar", "sar_gdpo"), ("o1", "er")
COLORS = {"grpo": "tab:blue", "sar": "tab:red", "sar_gdpo": "tab:orange", "o1": "tab:green", "er": "tab:purple",
          "ds": "tab:cyan", "gspo": "tab:brown", "cispo": "tab:olive", "sft": "black"}

# The designs. The pilot is one seed on the validation split; the test is pre-registered in
# docs/RESULTS.md ("Frontier comparison: pre-registration") before it runs.
DESIGNS: dict[str, dict[str, Any]] = {
    "pilot": {
        "split": "val", "steps": 240, "eval_at": [80, 160, 240], "save_every": 40,
        "eval_limit": 300, "eval_samples": 4,
        "arms": ["grpo", "sar@0.2", "sar@0.5", "sar@1.0", "sar_gdpo@0.2", "o1@0.03", "o1@0.1", "o1@0.2",
                 "er@0.03", "er@0.1", "er@0.2"],
        "sft_seeds": {"*": [0]}, "rl_seeds": [0],
    },
    # Pre-registered in docs/RESULTS.md ("Frontier comparison on synth_chain_v2: pre-registration"),
    # chosen from the pilot: the SA-GRPO grid moved up (α = 0.2 was within noise of GRPO's length), the
    # length penalties at the weights that moved length, GDPO as one more SA arm, 240 steps (accuracy
    # still rose from step 160 to 240), evaluation at steps 120 and 240; the middle of each grid also
    # from a second warm start.
    "test": {
        "split": "test", "steps": 240, "eval_at": [120, 240], "save_every": 40,
        "eval_limit": 300, "eval_samples": 4,
        "arms": ["grpo", "sar@0.5", "sar@1.0", "sar@2.0", "sar_gdpo@0.2", "o1@0.1", "o1@0.2", "er@0.1", "er@0.2"],
        "sft_seeds": {"*": [0], "grpo": [0, 1], "sar@1.0": [0, 1], "o1@0.1": [0, 1], "er@0.1": [0, 1]},
        "rl_seeds": [0, 1, 2],
    },
    # GRPO against its 2026 variants (dynamic sampling, GSPO, CISPO) from the test's warm start 0, on the
    # validation split: two optimizer steps per step (mini-batches of 32 of the 64 rollouts), so that the
    # second update is off-policy and the losses differ (with one step per batch every ratio is 1 and
    # vanilla, GSPO and CISPO give the same gradient)
    "losses": {
        "split": "val", "steps": 120, "eval_at": [60, 120], "save_every": 20,
        "eval_limit": 300, "eval_samples": 4,
        "arms": ["grpo", "ds", "gspo", "cispo"], "sft_seeds": {"*": [0]}, "rl_seeds": [0, 1],
        "rl": ["actor.mini_batch_size=32"],
    },
    "smoke": {  # for tests: a few steps of two arms
        "split": "val", "steps": 4, "eval_at": [2, 4], "save_every": 2, "eval_limit": 6, "eval_samples": 2,
        "arms": ["grpo", "sar@0.5", "o1@0.1"], "sft_seeds": {"*": [0]}, "rl_seeds": [0],
        "sft": {"synthetic_tasks": {SFT_TASK: 200}, "epochs": 1.0, "new_model": "layers=1,hidden=32,heads=2",
                "new_tokenizer": 1024},
        "rl": ["data.train_size=64", "rollout.n=2", "trainer.prompts_per_step=2", "rollout.batch_size=4",
               "data.max_response_length=24"],
    },
}


# ------------------------------------------------------------------------------------------ design
def parse_arm(arm: str) -> tuple[str, float]:
    """``"sar@0.5"`` → ``("sar", 0.5)``; ``"grpo"`` → ``("grpo", 0.0)``."""
    method, _, w = arm.partition("@")
    if method not in METHODS:
        raise ValueError(f"arm {arm!r}: unknown method {method!r}; choose from {', '.join(METHODS)}")
    if (METHODS[method]["reward"] is None) != (w == ""):
        raise ValueError(f"arm {arm!r}: {', '.join(unweighted())} take no weight, every other method one "
                         "(method@weight)")
    return method, float(w) if w else 0.0


def unweighted() -> list[str]:
    """The methods without an extra reward (GRPO and its policy-gradient variants): arms without a weight."""
    return [m for m, spec in METHODS.items() if spec["reward"] is None]


def label(arm: str) -> str:
    method, w = parse_arm(arm)
    return METHODS[method]["label"] + (f" {'α' if method in SAR_METHODS else 'w'}={w:g}" if w else "")


def runs_of(design: dict[str, Any]) -> list[dict[str, Any]]:
    """Every RL run of the design, interleaved so that workers taking every k-th get similar loads."""
    out = []
    for seed in design["rl_seeds"]:
        for arm in design["arms"]:
            for sft in design["sft_seeds"].get(arm, design["sft_seeds"]["*"]):
                out.append({"arm": arm, "sft": sft, "seed": seed, "name": f"{arm}-sft{sft}-s{seed}"})
    return out


def sft_seeds(design: dict[str, Any]) -> list[int]:
    return sorted({r["sft"] for r in runs_of(design)})


def run_overrides(design: dict[str, Any], run: dict[str, Any], model: Path, out: Path) -> list[str]:
    from sarl.quickstart import synth_rl_overrides

    method, w = parse_arm(run["arm"])
    weights = {"correctness": 1.0, **({METHODS[method]["reward"]: w} if w else {})}
    save_every = design["save_every"]
    return (synth_rl_overrides(model, out, weights=weights, steps=design["steps"], seed=run["seed"])
            + [f"data.train={RL_TASK}", f"trainer.save_every={save_every}",
               f"trainer.keep_last={design['steps'] // save_every + 1}", "trainer.tensorboard=false",
               "model.threads=1"]
            + METHODS[method].get("overrides", []) + design.get("rl", []))


# ------------------------------------------------------------------------------------------ running
def warm_start(root: Path, design: dict[str, Any], sft_seed: int, console, factory, threads: int) -> Path:
    from sarl.quickstart import warm_start as train_warm_start

    return train_warm_start(root / f"sft{sft_seed}", console, factory, {
        "synthetic_tasks": {SFT_TASK: 12000}, "seed": sft_seed, "threads": threads, **design.get("sft", {})})


def slim(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "sample", "steps", "correct", "length", "truncated", "style", "form", "response")
    return {k: row.get(k) for k in keep}


def write_gz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def eval_settings(design: dict[str, Any]):
    from sarl.config import load_config, recipe_path
    from sarl.evaluate import EvalSettings
    from sarl.quickstart import SYNTH_RECIPE
    from sarl.rollout import GenerationConfig

    max_new = load_config(recipe_path(SYNTH_RECIPE), design.get("rl", [])).data.max_response_length
    gens = {"greedy": GenerationConfig(max_new_tokens=max_new, batch_size=64),
            "sampled": GenerationConfig(max_new_tokens=max_new, temperature=1.0, n=design["eval_samples"], seed=0,
                                        batch_size=64)}
    return {mode: EvalSettings(datasets=[SPLITS[design["split"]]], limit=design["eval_limit"], instruction="none",
                               gen=g) for mode, g in gens.items()}


def evaluate(root: Path, design: dict[str, Any], name: str, step: int, model_dir: Path, log) -> None:
    """Evaluate one model (a checkpoint or a warm start) in both modes into ``samples/<name>/``."""
    from sarl.data import load_dataset
    from sarl.evaluate import evaluate_model, read_samples, tag
    from sarl.models import load_model
    from sarl.rollout import make_backend

    targets = {m: root / "samples" / name / f"step{step}.{m}.jsonl.gz" for m in MODES}
    if all(p.exists() for p in targets.values()):
        return
    dataset = SPLITS[design["split"]]
    problems = {dataset: load_dataset(dataset, limit=design["eval_limit"])}
    lm = load_model(str(model_dir), dtype="float32", device="cpu")
    backend = make_backend(lm, "transformers")
    t0 = time.perf_counter()
    for mode, st in eval_settings(design).items():
        if targets[mode].exists():
            continue
        key = f"{name}@{step}"
        evaluate_model(lm, backend, key, st, root / "eval" / mode, None, problems)
        rows = read_samples(root / "eval" / mode / tag(key) / f"{tag(dataset)}.samples.jsonl")
        write_gz(targets[mode], [slim(r) for r in rows])
    log(f"  evaluated {name} at step {step} ({time.perf_counter() - t0:.0f}s)")


def train_and_evaluate(root: Path, design: dict[str, Any], run: dict[str, Any], console) -> None:
    from sarl.config import load_config, recipe_path
    from sarl.quickstart import SYNTH_RECIPE, train_or_resume

    name = run["name"]
    if is_finished(root, design, name):
        console.print(f"{name}: done")
        return
    out = root / "runs" / name
    cfg = load_config(recipe_path(SYNTH_RECIPE), run_overrides(design, run, root / f"sft{run['sft']}" / "model", out))
    t0 = time.perf_counter()
    console.print(f"{name}: {cfg.trainer.total_steps} steps")

    def on_step(m):
        if m["step"] % 20 == 0:
            sar = f" sar={m['reward/sar']:.3f}" if m.get("reward/sar") is not None else ""
            console.print(f"  {name} step {m['step']}: acc={m['accuracy']:.3f} len={m['response_length/mean']:.1f}{sar}"
                          f" ({time.perf_counter() - t0:.0f}s)")

    train_or_resume(cfg, console, on_step)
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    for step in design["eval_at"]:
        ckpt = out / "checkpoints" / f"step_{step}" / "policy"
        if not ckpt.exists():
            ckpt = out / "final" if step == design["steps"] else ckpt
        if not ckpt.exists():
            raise SystemExit(f"{name}: no checkpoint at step {step} in {out / 'checkpoints'} (keep_last too small?)")
        evaluate(root, design, name, step, ckpt, console.print)
    write_gz(root / "metrics" / f"{name}.jsonl.gz", metrics)


def fixed_design(root: Path, name: str) -> dict[str, Any]:
    """The design of ``root``: written on the first run, and any later run must ask for the same one."""
    design = {"name": name, **DESIGNS[name]}
    path = root / "design.json"
    if path.exists():
        prior = json.loads(path.read_text())
        if prior != design:
            diff = sorted(k for k in set(prior) | set(design) if prior.get(k) != design.get(k))
            raise SystemExit(f"{path}: this folder holds design {prior.get('name')!r} with other settings "
                             f"({', '.join(diff)} differ); use another output folder")
    else:
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(design, indent=1) + "\n")
    return design


def cmd_run(args) -> int:
    from sarl.cli import progress_bar, task_factory

    root = args.output
    design = fixed_design(root, args.design)
    if args.seed_from is not None:
        seed_from(root, args.seed_from, design)
    t0 = time.perf_counter()
    with progress_bar() as prog:  # warm starts first, on every core
        console = prog.console
        for s in sft_seeds(design):
            model = warm_start(root, design, s, console, task_factory(prog), threads=args.workers)
            evaluate(root, design, f"sft{s}", 0, model, console.print)
    procs, logs = [], []
    for i in range(args.workers):
        log = (root / "logs" / f"worker{i}.log")
        log.parent.mkdir(exist_ok=True)
        logs.append(log.open("a"))
        procs.append(subprocess.Popen([sys.executable, __file__, "_worker", str(root), str(i), str(args.workers)],
                                      stdout=logs[-1], stderr=subprocess.STDOUT))
    console.print(f"{len(runs_of(design))} runs on {args.workers} workers; logs in {root / 'logs'}")
    codes = [p.wait() for p in procs]
    for f in logs:
        f.close()
    if any(codes):
        raise SystemExit(f"worker exit codes {codes}: see {root / 'logs'}; rerun the same command to resume")
    console.print(f"all runs finished ({time.perf_counter() - t0:.0f}s this invocation)")
    return cmd_analyze(argparse.Namespace(folder=root))


def cmd_worker(args) -> int:
    from rich.console import Console

    from sarl.models import set_threads

    set_threads(1)
    root = Path(args.root)
    design = json.loads((root / "design.json").read_text())
    console = Console(force_terminal=False, width=120)
    for run in runs_of(design)[args.index :: args.count]:
        train_and_evaluate(root, design, run, console)
    return 0


def is_finished(root: Path, design: dict[str, Any], name: str) -> bool:
    """Every evaluation of the run and its metrics are written (what ``analyze`` and ``export`` read)."""
    return (all((root / "samples" / name / f"step{s}.{m}.jsonl.gz").exists() for s in design["eval_at"] for m in MODES)
            and (root / "metrics" / f"{name}.jsonl.gz").exists())


def cmd_status(args) -> int:
    """Which runs of a folder are finished, in progress (last logged step) or not started."""
    root = args.folder
    if not (root / "design.json").exists():
        raise SystemExit(f"{root}: no design.json (not a frontier.py output folder)")
    from sarl.io import read_rows

    design = json.loads((root / "design.json").read_text())
    runs = runs_of(design)
    finished, going, pending = 0, [], []
    for r in runs:
        if is_finished(root, design, r["name"]):
            finished += 1
            continue
        log = root / "runs" / r["name"] / "metrics.jsonl"
        steps = [row["step"] for row in read_rows(log) if "step" in row] if log.exists() else []
        if steps:
            going.append(f"{r['name']} (step {max(steps)} of {design['steps']})")
        else:
            pending.append(r["name"])
    print(f"design {design['name']!r}: {finished} of {len(runs)} runs finished")
    for title, names in (("in progress", going), ("not started", pending)):
        if names:
            print(f"{title}: " + ", ".join(names))
    return 0


WARM_START_FILES = ("summary.json", "config.yaml", "model")


def cmd_export(args) -> int:
    """Copy what ``analyze`` reads (design, samples, metrics) and the warm starts (model and summary, so a
    later session on another machine continues from the same weights: ``run --seed-from``) into a folder
    to commit."""
    src, dst = args.folder, args.to
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "design.json", dst / "design.json")
    for sub in ("samples", "metrics"):
        if (src / sub).exists():
            shutil.copytree(src / sub, dst / sub, dirs_exist_ok=True)
    for sft in sorted(src.glob("sft[0-9]*")):
        if (sft / "summary.json").exists():
            for name in WARM_START_FILES:
                copy = shutil.copytree if (sft / name).is_dir() else shutil.copy2
                (dst / sft.name).mkdir(exist_ok=True)
                copy(sft / name, dst / sft.name / name, **({"dirs_exist_ok": True} if (sft / name).is_dir() else {}))
    print(f"copied design, samples, metrics and warm starts to {dst}")
    return 0


def seed_from(root: Path, src: Path, design: dict[str, Any]) -> None:
    """Start or continue ``root`` from an exported folder: its warm starts (when both designs train them
    with the same settings) and, from a folder of the same design, its finished runs' samples and metrics
    are copied in where ``root`` lacks them (finished runs are then skipped; a run whose files are missing
    trains from its start)."""
    prior = json.loads((src / "design.json").read_text())
    if prior.get("sft") != design.get("sft"):
        raise SystemExit(f"--seed-from {src}: its design {prior.get('name')!r} trains its warm starts with other "
                         "settings")
    for sft in sorted(src.glob("sft[0-9]*")):
        if not (root / sft.name / "summary.json").exists():
            shutil.copytree(sft, root / sft.name, dirs_exist_ok=True)
    if prior != design:  # the warm starts only: evaluations and runs belong to their design
        return
    for sub in ("samples", "metrics"):
        if (src / sub).exists():
            for f in (src / sub).rglob("*.gz"):
                target = root / f.relative_to(src)
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, target)


# ------------------------------------------------------------------------------------------ analysis (pure)
def per_problem(rows: list[dict], what: str = "correct") -> dict[str, float]:
    """Problem id → share of its samples that are correct (``what="correct"``) or in style ``what``, or
    their mean length (``what="length"``)."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        value = r["correct"] if what == "correct" else r["length"] if what == "length" else r["style"] == what
        groups.setdefault(r["id"], []).append(float(value))
    return {k: statistics.fmean(v) for k, v in groups.items()}


def load_samples(root: Path, design: dict[str, Any], sft: int) -> dict[tuple[str, int, str], dict[str, list[dict]]]:
    """``(arm, step, mode) → {run name: rows}`` for the runs from warm start ``sft`` whose evaluation
    is present (runs still missing are left out); the warm start itself as arm ``"sft"`` at step 0."""
    out: dict[tuple[str, int, str], dict[str, list[dict]]] = {}
    for mode in MODES:
        p = root / "samples" / f"sft{sft}" / f"step0.{mode}.jsonl.gz"
        if p.exists():
            out[("sft", 0, mode)] = {f"sft{sft}": read_gz(p)}
    for run in runs_of(design):
        if run["sft"] != sft:
            continue
        for step in design["eval_at"]:
            for mode in MODES:
                p = root / "samples" / run["name"] / f"step{step}.{mode}.jsonl.gz"
                if p.exists():
                    out.setdefault((run["arm"], step, mode), {})[run["name"]] = read_gz(p)
    return out


def point(runs: dict[str, list[dict]]) -> dict[str, Any]:
    """One arm at one budget and mode: accuracy (t interval over seeds, normal over problems), mean length
    (mean of the runs' means, with its own t interval over runs), style shares, per run."""
    from sarl.stats import contrast, t975

    names = sorted(runs)
    acc = contrast([(1.0, [per_problem(runs[n]) for n in names])])
    lengths = [statistics.fmean(r["length"] for r in runs[n]) for n in names]
    lm = statistics.fmean(lengths)
    lhalf = t975(len(lengths) - 1) * statistics.stdev(lengths) / math.sqrt(len(lengths)) if len(lengths) > 1 else 0.0
    return {"runs": names, "accuracy": acc, "length": lm, "length_ci95": [lm - lhalf, lm + lhalf],
            "per_run": {n: {"accuracy": statistics.fmean(per_problem(runs[n]).values()), "length": x}
                        for n, x in zip(names, lengths)},
            "truncated": statistics.fmean(statistics.fmean(float(r["truncated"]) for r in runs[n]) for n in names),
            "styles": {s: statistics.fmean(statistics.fmean(per_problem(runs[n], s).values()) for n in names)
                       for s in STYLES}}


def family(points: dict[str, dict], method: str) -> list[tuple[float, str]]:
    """A method's frontier: ``(weight, arm)`` by weight, GRPO (weight 0) first when present: every
    method is GRPO plus a weighted extra reward, so all frontiers start at GRPO's point."""
    if METHODS[method]["reward"] is None:
        return []
    out = [(parse_arm(a)[1], a) for a in points if a != "sft" and parse_arm(a)[0] == method]
    return ([(0.0, "grpo")] if "grpo" in points else []) + sorted(out)


def interpolate(points: dict[str, dict], method: str, length: float) -> dict[str, Any] | None:
    """``method``'s frontier at ``length``: on each segment between consecutive weights (GRPO first)
    whose lengths bracket it, the accuracy linear in length; where several segments do (lengths not
    monotone in the weight), the highest (a frontier is the best a method reaches at that length). None
    outside the frontier's length range (no extrapolation)."""
    fam = family(points, method)
    best = None
    for (_, a0), (_, a1) in zip(fam, fam[1:]):
        l0, l1 = points[a0]["length"], points[a1]["length"]
        if min(l0, l1) <= length <= max(l0, l1) and l0 != l1:
            lam = (length - l0) / (l1 - l0)
            acc = (1 - lam) * points[a0]["accuracy"]["mean"] + lam * points[a1]["accuracy"]["mean"]
            if best is None or acc > best["accuracy"]:
                best = {"accuracy": acc, "terms": [(1 - lam, a0), (lam, a1)]}
    return best


def frontier_comparisons(points: dict[str, dict], runs: dict[str, dict[str, list[dict]]]) -> list[dict[str, Any]]:
    """SA-GRPO's frontier minus each length penalty's at matched length, at every point of either (weight
    > 0) that lies inside the other's length range: at an SA point, the SA arm minus the penalty's
    frontier there; at a penalty point, SA-GRPO's frontier there minus the penalty arm. Each difference is
    a contrast of the arms' runs (interpolation weights fixed by the mean lengths), with its interval."""
    from sarl.stats import contrast

    def arm_runs(arm):
        return [per_problem(rows) for _, rows in sorted(runs[arm].items())]

    present = {parse_arm(a)[0] for a in points if a != "sft"}
    out = []
    for sa in (m for m in SAR_METHODS if m in present):
        for pen in (m for m in PENALTIES if m in present):
            for at, other in ((sa, pen), (pen, sa)):
                for _, arm in family(points, at):
                    if arm == "grpo":
                        continue
                    row = {"sa": sa, "penalty": pen, "at": arm, "length": points[arm]["length"]}
                    f = interpolate(points, other, points[arm]["length"])
                    if f is None:
                        out.append({**row, "comparable": False})
                        continue
                    sign = 1.0 if at == sa else -1.0  # always SA minus penalty
                    terms = [(sign, arm_runs(arm))] + [(-sign * w, arm_runs(a)) for w, a in f["terms"] if w]
                    out.append({**row, "comparable": True, "between": [a for _, a in f["terms"]],
                                "difference": contrast(terms)})
    return out


def verdicts(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pre-registered decision per (SA method, penalty) from :func:`frontier_comparisons`' rows:
    ``above`` when some matched-length difference has its 95% interval above 0 and none below;
    ``below`` when some has it below 0 and none above; ``mixed`` when both occur; ``not resolved``
    when every interval contains 0; ``not comparable`` when the frontiers share no length."""
    out: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(f"{r['sa']} vs {r['penalty']}" for r in rows):
        mine = [r for r in rows if f"{r['sa']} vs {r['penalty']}" == key and r["comparable"]]
        above = sum(r["difference"]["ci95"][0] > 0 for r in mine)
        below = sum(r["difference"]["ci95"][1] < 0 for r in mine)
        verdict = ("not comparable" if not mine else "mixed" if above and below else "above" if above
                   else "below" if below else "not resolved")
        out[key] = {"verdict": verdict, "comparisons": len(mine), "above": above, "below": below,
                    "mean_difference": statistics.fmean(r["difference"]["mean"] for r in mine) if mine else None}
    return out


def effective(points: dict[str, dict], runs: dict[str, dict[str, list[dict]]]) -> dict[str, Any] | None:
    """RL is effective: GRPO's accuracy minus the warm start's, with its interval (held when the
    interval lies above 0)."""
    from sarl.stats import contrast

    if "grpo" not in points or "sft" not in points:
        return None
    d = contrast([(1.0, [per_problem(r) for _, r in sorted(runs["grpo"].items())]),
                  (-1.0, [per_problem(r) for _, r in sorted(runs["sft"].items())])])
    return {"difference": d, "held": d["ci95"][0] > 0}


def h1_rows(points: dict[str, dict], runs: dict[str, dict[str, list[dict]]]) -> list[dict[str, Any]]:
    """H1 for the frontier: an SA arm with length <= 0.8 x GRPO's and accuracy >= GRPO's - 1 point."""
    from sarl.stats import contrast

    if "grpo" not in points:
        return []
    g = points["grpo"]
    out = []
    for arm in points:
        if arm in ("sft", "grpo") or parse_arm(arm)[0] not in SAR_METHODS:
            continue
        d = contrast([(1.0, [per_problem(r) for _, r in sorted(runs[arm].items())]),
                      (-1.0, [per_problem(r) for _, r in sorted(runs["grpo"].items())])])
        ratio = points[arm]["length"] / g["length"]
        out.append({"arm": arm, "length_ratio": ratio, "accuracy_difference": d,
                    "held": ratio <= 0.8 and d["mean"] >= -0.01})
    return out


def versus_grpo(points: dict[str, dict], runs: dict[str, dict[str, list[dict]]]) -> list[dict[str, Any]]:
    """Each arm without a weight (GRPO's variants) minus GRPO: accuracy (points) and length (tokens), each
    a contrast of the runs' per-problem values with its interval, and the length ratio."""
    from sarl.stats import contrast

    if "grpo" not in points:
        return []
    out = []
    for arm in points:
        if arm in ("sft", "grpo") or parse_arm(arm)[0] not in unweighted():
            continue
        pair = {}
        for what in ("correct", "length"):
            pair[what] = contrast([(1.0, [per_problem(r, what) for _, r in sorted(runs[arm].items())]),
                                   (-1.0, [per_problem(r, what) for _, r in sorted(runs["grpo"].items())])])
        out.append({"arm": arm, "accuracy_difference": pair["correct"], "length_difference": pair["length"],
                    "length_ratio": points[arm]["length"] / points["grpo"]["length"]})
    return out


def step_times(root: Path, design: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per arm: the median ``time/step`` of each finished run (seconds; every run of a design trains under
    the same load: the same workers, one thread each), their mean, the ratio to GRPO's mean, and for
    dynamic sampling the mean generation rounds per step."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs_of(design):
        p = root / "metrics" / f"{run['name']}.jsonl.gz"
        if not p.exists():
            continue
        rows = read_gz(p)
        arm = out.setdefault(run["arm"], {"median_s": [], "gen_rounds": []})
        arm["median_s"].append(statistics.median(r["time/step"] for r in rows if r.get("time/step") is not None))
        rounds = [r["filter/gen_rounds"] for r in rows if r.get("filter/gen_rounds") is not None]
        if rounds:
            arm["gen_rounds"].append(statistics.fmean(rounds))
    for arm in out.values():
        arm["mean_s"] = statistics.fmean(arm["median_s"])
        arm["gen_rounds"] = statistics.fmean(arm["gen_rounds"]) if arm["gen_rounds"] else None
    if "grpo" in out:
        for arm in out.values():
            arm["ratio_to_grpo"] = arm["mean_s"] / out["grpo"]["mean_s"]
    return out


def analyse(root: Path) -> dict[str, Any]:
    """Per warm start (runs from different warm starts are never pooled: each frontier is measured from
    one starting point), per evaluated step and mode: the points, the frontier comparisons and H1."""
    design = json.loads((root / "design.json").read_text())
    out: dict[str, Any] = {"design": design, "warm_starts": {}}
    for sft in sft_seeds(design):
        samples = load_samples(root, design, sft)
        budgets: dict[str, Any] = {}
        for step in design["eval_at"]:
            for mode in MODES:
                runs = {arm: r for (arm, s, m), r in samples.items() if m == mode and s in (step, 0)}
                if not [a for a in runs if a != "sft"]:
                    continue
                points = {arm: point(r) for arm, r in runs.items()}
                rows = frontier_comparisons(points, runs)
                budgets.setdefault(str(step), {})[mode] = {
                    "points": points, "frontier": rows, "verdicts": verdicts(rows), "H1": h1_rows(points, runs),
                    "effective": effective(points, runs), "versus_grpo": versus_grpo(points, runs)}
        out["warm_starts"][str(sft)] = budgets
    out["step_times"] = step_times(root, design)
    return out


# ------------------------------------------------------------------------------------------ output
def _pct(c: dict) -> str:
    lo, hi = c["ci95"]
    return f"{100 * c['mean']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _acc(c: dict) -> str:
    lo, hi = c["ci95"]
    return f"{100 * c['mean']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _budget_md(b: dict[str, Any]) -> list[str]:
    """One warm start's arms at one budget and mode: points, frontier comparisons, H1."""
    lines = ["| arm | accuracy | length | concise | padded | shortcut | restated | other | runs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for arm, p in sorted(b["points"].items(), key=lambda kv: (kv[0] != "sft", kv[0] != "grpo", kv[0])):
        shares = " | ".join(f"{100 * p['styles'][s]:.0f}" for s in STYLES)
        lines.append(f"| {'SFT warm start' if arm == 'sft' else label(arm)} | {_acc(p['accuracy'])} | "
                     f"{p['length']:.1f} | {shares} | {len(p['runs'])} |")
    if b["frontier"]:
        lines += ["", "SA-GRPO's frontier minus the length penalty's at matched length (accuracy points), at each "
                  "point of either frontier:", "",
                  "| SA | penalty | at | length | SA − penalty | other frontier between |", "|---|---|---|---|---|---|"]
        for r in b["frontier"]:
            lines.append(f"| {METHODS[r['sa']]['label']} | {METHODS[r['penalty']]['label']} | {label(r['at'])} | "
                         f"{r['length']:.1f} | "
                         + (f"{_pct(r['difference'])} | {' / '.join(label(a) for a in r['between'])} |"
                            if r["comparable"] else "outside the other's length range | – |"))
        lines += ["", "| frontier comparison | verdict | comparisons (above 0 / below 0) |", "|---|---|---|"]
        for key, v in b["verdicts"].items():
            sa, pen = key.split(" vs ")
            lines.append(f"| {METHODS[sa]['label']} vs {METHODS[pen]['label']} | **{v['verdict']}** | "
                         f"{v['comparisons']} ({v['above']} / {v['below']}) |")
    if b.get("effective"):
        e = b["effective"]
        lines += ["", f"Effective (GRPO − warm start): {_pct(e['difference'])} points, "
                  f"**{'held' if e['held'] else 'not held'}**."]
    if b.get("versus_grpo"):
        lines += ["", "Minus GRPO (accuracy in points, length in tokens; 95% intervals):", "",
                  "| arm | accuracy − GRPO | length − GRPO | length / GRPO |", "|---|---|---|---|"]
        for v in b["versus_grpo"]:
            lo, hi = v["length_difference"]["ci95"]
            lines.append(f"| {label(v['arm'])} | {_pct(v['accuracy_difference'])} | "
                         f"{v['length_difference']['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}] | {v['length_ratio']:.3f} |")
    if b["H1"]:
        lines += ["", "H1 (length <= 0.8x GRPO's at accuracy >= GRPO's - 1 point):", "",
                  "| SA arm | length / GRPO | accuracy − GRPO | held |", "|---|---|---|---|"]
        for h in b["H1"]:
            lines.append(f"| {label(h['arm'])} | {h['length_ratio']:.3f} | {_pct(h['accuracy_difference'])} | "
                         f"{'yes' if h['held'] else 'no'} |")
    return lines


def headline_md(res: dict[str, Any]) -> list[str]:
    """The README's table: per warm start, the last evaluated step, every arm sampled and greedy side by
    side (accuracy with its interval, length, length / GRPO's), then the pre-registered decisions."""
    def order(arm: str) -> tuple[int, float]:  # warm start, GRPO, then each method by weight
        return (-1, 0.0) if arm == "sft" else (list(METHODS).index(parse_arm(arm)[0]), parse_arm(arm)[1])

    last = str(res["design"]["eval_at"][-1])
    lines: list[str] = []
    for sft, budgets in res["warm_starts"].items():
        by_mode = budgets.get(last, {})
        if "sampled" not in by_mode:
            continue
        lines += [f"**Warm start {sft}, step {last}** (accuracy % [95% interval], length in tokens, length / "
                  "GRPO's):", "", "| arm | runs | sampled accuracy | length | / GRPO | greedy accuracy | length | / GRPO |",
                  "|---|---|---|---|---|---|---|---|"]
        pts = by_mode["sampled"]["points"]
        for arm in sorted(pts, key=order):
            cells = []
            for mode in ("sampled", "greedy"):
                p = by_mode.get(mode, {}).get("points", {}).get(arm)
                g = by_mode.get(mode, {}).get("points", {}).get("grpo")
                if p is None:
                    cells += ["–", "–", "–"]
                    continue
                ratio = f"{p['length'] / g['length']:.2f}" if g and arm != "sft" else "–"
                cells += [_acc(p["accuracy"]), f"{p['length']:.1f}", ratio]
            lines.append(f"| {'SFT warm start' if arm == 'sft' else label(arm)} | {len(pts[arm]['runs'])} | "
                         + " | ".join(cells) + " |")
        lines += ["", "| decision | sampled | greedy |", "|---|---|---|"]
        for key in by_mode["sampled"]["verdicts"]:
            sa, pen = key.split(" vs ")
            cells = []
            for mode in ("sampled", "greedy"):
                v = by_mode.get(mode, {}).get("verdicts", {}).get(key)
                cells.append("–" if v is None else f"{v['verdict']} ({v['above']} above / {v['below']} below of "
                             f"{v['comparisons']})")
            lines.append(f"| D1: {METHODS[sa]['label']} vs {METHODS[pen]['label']} | " + " | ".join(cells) + " |")
        cells = []
        for mode in ("sampled", "greedy"):
            h = by_mode.get(mode, {}).get("H1") or []
            held = [label(x["arm"]) for x in h if x["held"]]
            best = min(h, key=lambda x: x["length_ratio"]) if h else None
            cells.append("–" if best is None else ("held by " + ", ".join(held) if held else "not held")
                         + f" (shortest SA arm: {label(best['arm'])}, {best['length_ratio']:.2f}x, "
                         f"{_pct(best['accuracy_difference'])} points)")
        if any(c != "–" for c in cells):
            lines.append("| H1: length <= 0.8x GRPO's at accuracy >= GRPO's - 1 | " + " | ".join(cells) + " |")
        cells = []
        for mode in ("sampled", "greedy"):
            e = by_mode.get(mode, {}).get("effective")
            cells.append("–" if e is None else f"{'held' if e['held'] else 'not held'}: "
                         f"{_pct(e['difference'])} points")
        lines += ["| effective: GRPO − warm start | " + " | ".join(cells) + " |", ""]
    return lines


def markdown(res: dict[str, Any]) -> str:
    d = res["design"]
    lines = [f"Design `{d['name']}`: split `{SPLITS[d['split']]}` ({d['eval_limit']} problems), {d['steps']} RL steps, "
             f"evaluated at steps {', '.join(map(str, d['eval_at']))}; greedy and sampled (T=1, {d['eval_samples']} "
             "per problem). Accuracy in % with 95% intervals (t over seeds, normal over problems); length in tokens "
             "(mean of runs); style shares in % of samples.", "", "### headline", ""] + headline_md(res)
    for sft, budgets in res["warm_starts"].items():
        for step, by_mode in budgets.items():
            for mode, b in by_mode.items():
                lines += [f"### warm start {sft}, step {step}, {mode}", ""] + _budget_md(b) + [""]
    times = res.get("step_times") or {}
    if times:
        lines += ["### step time", "", "Median seconds per training step of each run, mean over runs, and the ratio "
                  "to GRPO's. The design's runs share the machine alike (two workers taking every other run), "
                  "but the ratios compare like with like only if nothing else ran beside them (docs/RESULTS.md "
                  "says when that held):", "",
                  "| arm | s/step | / GRPO | generation rounds per step |", "|---|---|---|---|"]
        for arm, t in times.items():
            ratio = f"{t['ratio_to_grpo']:.2f}" if "ratio_to_grpo" in t else "–"
            rounds = f"{t['gen_rounds']:.2f}" if t["gen_rounds"] is not None else "1"
            lines.append(f"| {label(arm)} | {t['mean_s']:.2f} | {ratio} | {rounds} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], root: Path, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    last = str(res["design"]["eval_at"][-1])
    for (sft, budgets), mode in ((kv, m) for kv in res["warm_starts"].items() for m in MODES):
        b = budgets.get(last, {}).get(mode)
        if not b:
            continue
        pts = b["points"]
        fig, ax = plt.subplots(figsize=(7.5, 5.5))
        for method in METHODS:
            fam = family(pts, method) if method != "grpo" else []
            if len(fam) > 1:
                xs = [pts[a]["length"] for _, a in fam]
                ys = [100 * pts[a]["accuracy"]["mean"] for _, a in fam]
                ax.plot(xs, ys, "-", color=COLORS[method], alpha=0.6)
            for w, a in fam:
                if a == "grpo":
                    continue
                p = pts[a]
                acc = p["accuracy"]
                ax.errorbar(p["length"], 100 * acc["mean"],
                            yerr=[[100 * (acc["mean"] - acc["ci95"][0])], [100 * (acc["ci95"][1] - acc["mean"])]],
                            fmt="*" if method in SAR_METHODS else "o", color=COLORS[method], capsize=3, markersize=9,
                            markeredgecolor="black", label=label(a))
                ax.annotate(f"{w:g}", (p["length"], 100 * acc["mean"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)
        for a in (a for a in pts if a not in ("grpo", "sft") and parse_arm(a)[0] in unweighted()):
            p, acc = pts[a], pts[a]["accuracy"]
            ax.errorbar(p["length"], 100 * acc["mean"],
                        yerr=[[100 * (acc["mean"] - acc["ci95"][0])], [100 * (acc["ci95"][1] - acc["mean"])]],
                        fmt="D", color=COLORS[parse_arm(a)[0]], capsize=3, markersize=7, label=label(a))
        for a in ("grpo", "sft"):
            if a in pts:
                p = pts[a]
                acc = p["accuracy"]
                ax.errorbar(p["length"], 100 * acc["mean"],
                            yerr=[[100 * (acc["mean"] - acc["ci95"][0])], [100 * (acc["ci95"][1] - acc["mean"])]],
                            fmt="s", color=COLORS[a], capsize=3, markersize=8, label="GRPO" if a == "grpo" else
                            "SFT warm start")
        ax.set_xlabel("mean response length (tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{res['design']['name']}: {SPLITS[res['design']['split']]}, warm start {sft}, step {last}, {mode}\n"
                     "up-left is better; bars: 95% intervals (t over seeds, normal over problems)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = out / f"frontier_sft{sft}_{mode}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    curves = ("accuracy", "response_length/mean", "reward/sar", "style/concise", "style/padded", "style/restated")
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    design = res["design"]
    by_arm: dict[str, list[list[dict]]] = {}
    first = sft_seeds(design)[0]  # one warm start: runs from different ones are never pooled
    for run in runs_of(design):
        p = root / "metrics" / f"{run['name']}.jsonl.gz"
        if p.exists() and run["sft"] == first:
            by_arm.setdefault(run["arm"], []).append(read_gz(p))
    weights: dict[str, list[float]] = {}  # each method's weights, so its lines shade from light to dark
    for arm in by_arm:
        weights.setdefault(parse_arm(arm)[0], []).append(parse_arm(arm)[1])
    for arm, metric_runs in by_arm.items():
        method, w = parse_arm(arm)
        shade = (sorted(weights[method]).index(w) + 1) / len(weights[method])
        for ax, key in zip(axes.flat, curves):
            per_step: dict[int, list[float]] = {}
            for rows in metric_runs:
                for r in rows:
                    if r.get(key) is not None:
                        per_step.setdefault(r["step"], []).append(r[key])
            steps = sorted(per_step)
            ys = [statistics.fmean(per_step[s]) for s in steps]
            smooth = [statistics.fmean(ys[max(0, i - 19): i + 1]) for i in range(len(ys))]
            ax.plot(steps, smooth, color=COLORS[method], alpha=0.3 + 0.7 * shade, label=label(arm))
            ax.set_title(f"training {key}", fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{design['name']}: training metrics of the runs from warm start {first}, mean over each arm's "
                 "runs, 20-step running mean", fontsize=10)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths + [path]


def cmd_analyze(args) -> int:
    from sarl.io import write_json_atomic

    root = args.folder
    res = analyse(root)
    write_json_atomic(root / "results.json", res)
    md = markdown(res)
    (root / "results.md").write_text(md)
    paths = plot(res, root, root)
    print(md)
    print(f"wrote {root / 'results.json'}, {root / 'results.md'}, " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and evaluate a design (resumable), then analyze")
    r.add_argument("--design", choices=sorted(DESIGNS), required=True)
    r.add_argument("-o", "--output", type=Path, required=True)
    r.add_argument("--workers", type=int, default=2, help="training processes, one torch thread each")
    r.add_argument("--seed-from", type=Path, default=None,
                   help="an exported folder (benchmarks/results/frontier_test): reuse its warm starts (same warm "
                        "start settings) and, of the same design, its finished runs")
    a = sub.add_parser("analyze", help="recompute results.json/md and figures from design, samples and metrics")
    a.add_argument("folder", type=Path)
    st = sub.add_parser("status", help="which runs of a folder are finished, in progress or not started")
    st.add_argument("folder", type=Path)
    e = sub.add_parser("export", help="copy design, samples and metrics of a run folder to a folder to commit")
    e.add_argument("folder", type=Path)
    e.add_argument("to", type=Path)
    w = sub.add_parser("_worker")
    w.add_argument("root")
    w.add_argument("index", type=int)
    w.add_argument("count", type=int)
    args = p.parse_args(argv)
    return {"run": cmd_run, "analyze": cmd_analyze, "export": cmd_export, "status": cmd_status,
            "_worker": cmd_worker}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
