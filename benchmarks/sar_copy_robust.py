"""Copy-robust SAR (issue 14): does a setting stop paying for parroting the question? (JSON out)

For each problem of each source (GSM8K test 0-99 and MATH-500 0-99 by default), the six answers of
``sarl analyze`` plus the extra restatements of :data:`sarl.analyze.EXTRA_VARIANTS` are built, and the
per-token log-probs of every (problem, answer) pair are computed **once** (``log p(a_t | q)`` and
``log p(a_t | ∅)``, the two passes of :class:`sarl.scoring.SARScorer`). Every candidate
:class:`~sarl.rewards.self_aligned.SARConfig` is then evaluated from those tensors, so the grid costs
no model time. Tuning uses GSM8K and the ``restated`` template only; MATH-500 and the other
restatements are held out (the JSON marks which is which).

Cost: the forward passes of the log-prob stage are timed, and so is the recommended setting's reward
computation on the same tensors (the only extra work it does); the ratio is the overhead. A second,
end-to-end measurement times ``SARScorer.score`` with and without the recommended setting as an extra
variant on a subset, alternating the two to share the machine's noise.

    OMP_NUM_THREADS=1 python benchmarks/sar_copy_robust.py --cache /tmp/sar_copy_robust_cache.pt

MATH-500 ships full solutions; the final sentence holding ``\\boxed{}`` is cut (so ``wrong_final``
does not state the right answer before the wrong one) and ``[asy]`` blocks are dropped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import re
import statistics
import time
from pathlib import Path

import torch

SOURCES = ("gsm8k", "math500")
TUNE_SOURCE, TUNE_VARIANT = "gsm8k", "restated"
# the acceptance bar of issue 14
BAR = {"restated>gold": ("<=", 0.2), "gold>redundant": (">=", 0.95), "gold>irrelevant": (">=", 0.95)}


SELECTION = (
    "Chosen on GSM8K + `restated` only: every copy_ngram in 6..16 (zero or mask mode) already gives "
    "P(restated > gold) <= 0.06 there, so n is the smallest value at which gold solutions are almost never "
    "flagged (n = 10: 1% of gold tokens, in 4 of 100 problems, vs 2.5% / 16 at n = 8 and 6% / 39 at n = 6), and "
    "zero mode beats mask mode on the restated template (0.00 vs 0.02). The dense option (copy_dense_*) was "
    "added afterwards against restated_paraphrase, tuned on GSM8K's paraphrase (so that variant is no "
    "longer held out for it) and confirmed on MATH-500's."
)


def clean_math_solution(sol: str) -> str:
    """A MATH solution without ``[asy]`` blocks and without its last sentence holding ``\\boxed``."""
    sol = re.sub(r"\[asy\].*?\[/asy\]", "", sol, flags=re.DOTALL)
    idx = sol.rfind("\\boxed")
    if idx >= 0:
        cut = max(sol.rfind(". ", 0, idx), sol.rfind(".\n", 0, idx), sol.rfind("\n", 0, idx))
        sol = sol[: cut + 1] if cut > 0 else sol[:idx].rstrip(" $")
    return "\n".join(line for line in sol.split("\n") if line.strip()) or "We compute it."


def load_problems(source: str, limit: int, offset: int = 0) -> list[dict]:
    from sarl.data import load_dataset, load_gsm8k

    if source == "gsm8k":
        return load_gsm8k()[offset : offset + limit]
    probs = load_dataset(source, limit=offset + limit)[offset:]
    return [{"id": p.id, "question": p.question, "solution": clean_math_solution(p.solution or ""),
             "answer": p.answer} for p in probs]


def all_variants(problems: list[dict], seed: int) -> dict[str, list[str]]:
    from sarl.analyze import build_extra_variants, build_variants

    base = build_variants(problems, seed)
    return {**base, **build_extra_variants(problems, seed, base=base)}


def compute_logprobs(scorer, problems_by_source: dict[str, list[dict]], seed: int) -> dict:
    """The two forward passes for every (source, problem, variant): a dict of plain lists (cacheable)."""
    from sarl.logprobs import answer_logprobs

    rows = []
    for source, problems in problems_by_source.items():
        variants = all_variants(problems, seed)
        for name, answers in variants.items():
            for i, (p, a) in enumerate(zip(problems, answers)):
                rows.append({"source": source, "variant": name, "problem": i, "question": p["question"], "answer": a})
    ctx, ans, status = scorer.encode_pairs([r["question"] for r in rows], [r["answer"] for r in rows])
    kw = {"pad_token_id": scorer.lm.tokenizer.pad_token_id, "max_batch_tokens": scorer.max_batch_tokens}
    t0 = time.perf_counter()
    qa = answer_logprobs(scorer.lm.model, ctx, ans, **kw)
    null = answer_logprobs(scorer.lm.model, [scorer._null_ids] * len(ans), ans, **kw)
    forward_s = time.perf_counter() - t0
    for r, c, a, st, lq, la in zip(rows, ctx, ans, status, qa.logp, null.logp):
        r.update(context_ids=c, response_ids=a, status=st, logp_qa=lq[: len(a)].tolist(), logp_a=la[: len(a)].tolist())
    return {"rows": rows, "forward_s": forward_s, "answer_tokens": sum(len(a) for a in ans)}


def to_tensors(rows: list[dict]):
    T = max(1, max(len(r["response_ids"]) for r in rows))
    lq = torch.zeros(len(rows), T)
    la = torch.zeros(len(rows), T)
    m = torch.zeros(len(rows), T)
    for i, r in enumerate(rows):
        n = len(r["response_ids"])
        lq[i, :n] = torch.tensor(r["logp_qa"])
        la[i, :n] = torch.tensor(r["logp_a"])
        m[i, :n] = 1.0
    return lq, la, m, [r["context_ids"] for r in rows], [r["response_ids"] for r in rows]


def candidate_grid() -> dict[str, object]:
    from sarl.rewards.self_aligned import SARConfig

    grid = {"default": SARConfig(), "use_log": SARConfig(use_log=True)}
    for n, mode, log in itertools.product((4, 6, 8, 10, 12, 16), ("mask", "zero"), (False, True)):
        grid[f"copy{n}_{mode}{'_log' if log else ''}"] = SARConfig(copy_ngram=n, copy_mode=mode, use_log=log)
    for cap in (0.5, 1.0, 2.0, 3.0):
        grid[f"cap{cap:g}"] = SARConfig(token_ratio_cap=cap)
        grid[f"cap{cap:g}_log"] = SARConfig(token_ratio_cap=cap, use_log=True)
    for n, cap in itertools.product((6, 8, 10), (1.0, 2.0)):
        for mode in ("mask", "zero"):
            grid[f"copy{n}_{mode}_cap{cap:g}"] = SARConfig(copy_ngram=n, copy_mode=mode, token_ratio_cap=cap)
    for (m, w, rho), log in itertools.product(((3, 15, 0.5), (3, 15, 0.6), (3, 21, 0.5), (3, 21, 0.6), (4, 15, 0.5),
                                               (4, 21, 0.5), (2, 21, 0.7)), (False, True)):
        grid[f"copy10_zero_dense{m}w{w}r{rho:g}{'_log' if log else ''}"] = SARConfig(
            copy_ngram=10, copy_dense_ngram=m, copy_dense_window=w, copy_dense_min=rho, use_log=log)
    grid["recommended"] = SARConfig.copy_robust()
    grid["recommended_log"] = SARConfig.copy_robust(use_log=True)
    grid["recommended_dense"] = SARConfig.copy_robust(dense=True)
    grid["recommended_dense_log"] = SARConfig.copy_robust(dense=True, use_log=True)
    return grid


def evaluate(rows: list[dict], cfg, tensors) -> dict[str, list[float]]:
    """SAR per row for one setting, grouped as {variant: [SAR per problem]}."""
    from sarl.rewards.self_aligned import self_aligned_reward

    lq, la, m, ctx, ans = tensors
    sar = self_aligned_reward(lq, la, m, cfg, context_ids=ctx, response_ids=ans)["sar"].tolist()
    out: dict[str, list[float]] = {}
    for r, s in zip(rows, sar):
        out.setdefault(r["variant"], []).append(s)
    return out


def summarize(scores: dict[str, list[float]]) -> dict:
    from sarl.analyze import EXTRA_PAIRS, PAIRS

    means = {k: statistics.fmean(v) for k, v in scores.items()}
    wins = {f"{a}>{b}": sum(x > y for x, y in zip(scores[a], scores[b])) / len(scores[a])
            for a, b in PAIRS + EXTRA_PAIRS if a in scores and b in scores}
    return {"means": means, "win_rates": wins}


def passes_bar(summary: dict, default_summary: dict) -> dict[str, bool]:
    w = summary["win_rates"]
    out = {k: (w[k] <= v if op == "<=" else w[k] >= v) for k, (op, v) in BAR.items()}
    out["gold>wrong_final >= default"] = w["gold>wrong_final"] >= default_summary["win_rates"]["gold>wrong_final"]
    return out


def time_scoring(scorer, problems: list[dict], seed: int, repeats: int) -> dict:
    """End-to-end ``SARScorer.score`` time without and with the recommended setting as an extra variant,
    alternating the two (same run, same answers)."""
    from sarl.rewards.self_aligned import SARConfig

    v = all_variants(problems, seed)
    names = ["gold", "restated"]
    qs = [p["question"] for p in problems] * len(names)
    ans = [a for n in names for a in v[n]]
    t = {"without": [], "with": []}
    for _ in range(repeats):
        for key, variants in (("without", None), ("with", {"copy": SARConfig.copy_robust()})):
            t0 = time.perf_counter()
            scorer.score(qs, ans, variants=variants)
            t[key].append(time.perf_counter() - t0)
    best = {k: min(x) for k, x in t.items()}
    return {"pairs": len(qs), "repeats": repeats, "seconds": t, "min_without_s": best["without"],
            "min_with_s": best["with"], "ratio_with_over_without": best["with"] / best["without"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None, help="per-token log-probs are read from / written to it")
    ap.add_argument("--timing-problems", type=int, default=50, help="problems in the end-to-end timing (0: skip)")
    ap.add_argument("--timing-repeats", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/sar_copy_robust.json"))
    args = ap.parse_args(argv)

    from sarl.models import load_model
    from sarl.rewards.self_aligned import SARConfig, self_aligned_reward
    from sarl.scoring import SARScorer

    torch.set_num_threads(args.threads)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    lm = load_model(args.model, dtype="float32", device="cpu", threads=args.threads)
    scorer = SARScorer(lm)
    rows: list[dict] = []
    forward_s = answer_tokens = 0
    for source in sources:  # one cache file per source, so a source can be evaluated as soon as it is done
        key = {"model": lm.name, "limit": args.limit, "seed": args.seed, "source": source}
        path = args.cache.with_name(f"{args.cache.stem}_{source}{args.cache.suffix}") if args.cache else None
        cached = torch.load(path, weights_only=False) if path and path.exists() else None
        if cached is not None and cached.get("key") == key:
            data = cached["data"]
            print(f"{source}: log-probs from {path} ({len(data['rows'])} pairs)", flush=True)
        else:
            data = compute_logprobs(scorer, {source: load_problems(source, args.limit)}, args.seed)
            print(f"{source}: log-probs of {len(data['rows'])} pairs in {data['forward_s']:.0f}s", flush=True)
            if path:
                torch.save({"key": key, "data": data}, path)
        rows += data["rows"]
        forward_s += data["forward_s"]
        answer_tokens += data["answer_tokens"]

    results: dict[str, dict] = {}
    grid = candidate_grid()
    for source in sources:
        src_rows = [r for r in rows if r["source"] == source]
        tensors = to_tensors(src_rows)
        per = {name: summarize(evaluate(src_rows, cfg, tensors)) for name, cfg in grid.items()}
        for name, s in per.items():
            s["bar"] = passes_bar(s, per["default"])
            s["passes_bar"] = all(s["bar"].values())
        results[source] = per

    # cost: the recommended setting's extra reward work on the same tensors vs the forward passes
    rec = SARConfig.copy_robust()
    tensors = to_tensors(rows)
    lq, la, m, ctx, ans = tensors
    reward_s = {}
    for name, cfg in (("default", SARConfig()), ("recommended", rec), ("recommended_dense", SARConfig.copy_robust(dense=True))):
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            self_aligned_reward(lq, la, m, cfg, context_ids=ctx, response_ids=ans)
            ts.append(time.perf_counter() - t0)
        reward_s[name] = min(ts)
    cost = {
        "pairs": len(rows), "answer_tokens": answer_tokens,
        "forward_passes_s": forward_s,
        "reward_default_s": reward_s["default"], "reward_recommended_s": reward_s["recommended"],
        "reward_recommended_dense_s": reward_s["recommended_dense"],
        "overhead_ratio": (reward_s["recommended"] - reward_s["default"]) / forward_s,
        "overhead_ratio_dense": (reward_s["recommended_dense"] - reward_s["default"]) / forward_s,
        "note": "overhead_ratio = (recommended - default reward time) / time of the two forward passes; "
                "forward_passes_s comes from the cache's run when the cache was reused",
    }
    if args.timing_problems > 0:
        cost["end_to_end"] = time_scoring(scorer, load_problems(TUNE_SOURCE, args.timing_problems), args.seed,
                                          args.timing_repeats)

    from sarl.analyze import EXTRA_VARIANTS, VARIANTS

    out = {
        "model": lm.name, "limit": args.limit, "seed": args.seed, "sources": sources,
        "machine": {"platform": platform.platform(), "threads": args.threads},
        "tuned_on": {"source": TUNE_SOURCE, "variant": TUNE_VARIANT},
        "held_out": {"sources": [s for s in sources if s != TUNE_SOURCE],
                     "variants": sorted(EXTRA_VARIANTS)},
        "variants": {**VARIANTS, **EXTRA_VARIANTS},
        "recommended": {k: getattr(rec, k) for k in rec.__dataclass_fields__},
        "bar": {k: f"{op} {v}" for k, (op, v) in BAR.items()} | {"gold>wrong_final": ">= default SAR's"},
        "selection": SELECTION,
        "cost": cost,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    show = ["default", "use_log", "recommended", "recommended_log", "recommended_dense", "recommended_dense_log"]
    for source in sources:
        print(f"\n== {source}")
        for name in show:
            s = results[source][name]
            w = s["win_rates"]
            print(f"{name:22s} restated>gold={w['restated>gold']:.2f} g>red={w['gold>redundant']:.2f} "
                  f"g>wf={w['gold>wrong_final']:.2f} g>irr={w['gold>irrelevant']:.2f} "
                  + " ".join(f"{k.split('>')[0][9:]}>g={v:.2f}" for k, v in w.items() if k.startswith("restated_")))
    print(f"\ncost overhead ratio: {cost['overhead_ratio']:.5f} (dense: {cost['overhead_ratio_dense']:.5f})")
    if "end_to_end" in cost:
        print(f"end-to-end with/without: {cost['end_to_end']['ratio_with_over_without']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
