"""benchmarks/frontier.py: arms, the frontier interpolation and its contrast (hand-computed), the fixed
design of a folder, and a tiny end-to-end run whose committed-style copy recomputes the same results."""

import json
import math
from pathlib import Path

import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def F():
    return load_benchmark("frontier")


def test_arms_parse_and_refuse(F):
    assert F.parse_arm("sar@0.5") == ("sar", 0.5) and F.parse_arm("grpo") == ("grpo", 0.0)
    assert F.label("o1@0.03") == "O1-Pruner w=0.03" and F.label("sar_gdpo@0.2") == "SA-GRPO + GDPO α=0.2"
    with pytest.raises(ValueError, match="unknown method 'ppo'"):
        F.parse_arm("ppo@1")
    with pytest.raises(ValueError, match="grpo, ds, gspo, cispo take no weight"):
        F.parse_arm("grpo@0.2")
    with pytest.raises(ValueError, match="one \\(method@weight\\)"):
        F.parse_arm("sar")


def test_runs_and_overrides_differ_only_in_the_reward(F, tmp_path):
    design = {**F.DESIGNS["pilot"], "arms": ["grpo", "sar@0.5", "sar_gdpo@0.2"], "sft_seeds": {"*": [0], "grpo": [0, 1]},
              "rl_seeds": [0, 1]}
    names = [r["name"] for r in F.runs_of(design)]
    assert names[:4] == ["grpo-sft0-s0", "grpo-sft1-s0", "sar@0.5-sft0-s0", "sar_gdpo@0.2-sft0-s0"] and len(names) == 8
    assert F.sft_seeds(design) == [0, 1]
    runs = {r["name"]: F.run_overrides(design, r, tmp_path / "m", tmp_path / r["name"]) for r in F.runs_of(design)}
    g, s, d = runs["grpo-sft0-s0"], runs["sar@0.5-sft0-s0"], runs["sar_gdpo@0.2-sft0-s0"]
    assert "rewards.weights={correctness: 1.0}" in g and "rewards.weights={correctness: 1.0, sar: 0.5}" in s
    assert "algorithm.reward_aggregation=normalize_then_sum" in d and not any("reward_aggregation" in x for x in s)
    assert "data.train=synth_chain_v2" in g and "trainer.keep_last=7" in g  # every evaluated checkpoint kept


def test_policy_gradient_variants_against_grpo(F, tmp_path):
    assert F.parse_arm("cispo") == ("cispo", 0.0) and F.label("ds") == "GRPO + dynamic sampling"
    with pytest.raises(ValueError, match="take no weight"):
        F.parse_arm("gspo@0.1")
    design = F.DESIGNS["losses"]
    ov = {r["arm"]: F.run_overrides(design, r, tmp_path / "m", tmp_path / r["name"]) for r in F.runs_of(design)}
    assert all("actor.mini_batch_size=32" in o and "rewards.weights={correctness: 1.0}" in o for o in ov.values())
    assert "algorithm.filter_groups.enable=true" in ov["ds"] and "actor.policy_loss=cispo" in ov["cispo"]
    assert "actor.policy_loss=gspo" in ov["gspo"] and not any("policy_loss" in x for x in ov["grpo"])

    def rows(correct, length):
        return [{"id": "p", "correct": correct, "length": length, "style": "concise", "truncated": False}]

    runs = {"grpo": {"g0": rows(True, 70), "g1": rows(False, 70)}, "cispo": {"c0": rows(True, 60), "c1": rows(True, 50)}}
    pts = {a: F.point(r) for a, r in runs.items()}
    (v,) = F.versus_grpo(pts, runs)
    assert v["arm"] == "cispo" and v["accuracy_difference"]["mean"] == pytest.approx(0.5)
    assert v["length_difference"]["mean"] == pytest.approx(-15.0) and v["length_ratio"] == pytest.approx(55 / 70)
    assert F.family(pts, "cispo") == []  # no frontier: a single point


def _pt(acc, length):
    return {"accuracy": {"mean": acc}, "length": length}


def test_interpolate_along_the_weight_ordered_frontier(F):
    pts = {"grpo": _pt(0.60, 70.0), "o1@0.1": _pt(0.58, 50.0), "o1@0.2": _pt(0.50, 40.0), "sar@0.5": _pt(0.6, 65.0)}
    assert [a for _, a in F.family(pts, "o1")] == ["grpo", "o1@0.1", "o1@0.2"]
    f = F.interpolate(pts, "o1", 60.0)  # halfway between GRPO (70) and o1@0.1 (50)
    assert f["accuracy"] == pytest.approx(0.59) and f["terms"] == [(pytest.approx(0.5), "grpo"), (pytest.approx(0.5), "o1@0.1")]
    assert F.interpolate(pts, "o1", 42.5)["accuracy"] == pytest.approx(0.52)
    assert F.interpolate(pts, "o1", 80.0) is None and F.interpolate(pts, "o1", 30.0) is None  # no extrapolation
    # lengths not monotone in the weight: two segments bracket 55; the penalty's better one counts
    pts2 = {"grpo": _pt(0.6, 70.0), "o1@0.1": _pt(0.4, 50.0), "o1@0.2": _pt(0.7, 60.0)}
    assert F.interpolate(pts2, "o1", 55.0)["accuracy"] == pytest.approx(0.55)  # (0.4 + 0.7) / 2 beats 0.5


def test_frontier_comparison_is_a_contrast_of_the_runs(F):
    # one problem, two seeds per arm: accuracies chosen so the contrast is hand-computable
    runs = {"grpo": {"g0": [{"id": "p", "correct": True, "length": 70, "style": "padded", "truncated": False}],
                     "g1": [{"id": "p", "correct": False, "length": 70, "style": "padded", "truncated": False}]},
            "o1@0.1": {"o0": [{"id": "p", "correct": False, "length": 50, "style": "concise", "truncated": False}],
                       "o1": [{"id": "p", "correct": False, "length": 50, "style": "concise", "truncated": False}]},
            "sar@0.5": {"s0": [{"id": "p", "correct": True, "length": 60, "style": "concise", "truncated": False}],
                        "s1": [{"id": "p", "correct": True, "length": 60, "style": "concise", "truncated": False}]}}
    pts = {a: F.point(r) for a, r in runs.items()}
    assert pts["grpo"]["accuracy"]["mean"] == pytest.approx(0.5) and pts["sar@0.5"]["length"] == 60
    row, other = F.frontier_comparisons(pts, runs)
    # at SA-GRPO's point: O1's frontier at 60 tokens = 0.5 * GRPO (0.5) + 0.5 * o1@0.1 (0.0) = 0.25 -> +0.75
    assert (row["at"], row["comparable"]) == ("sar@0.5", True) and row["difference"]["mean"] == pytest.approx(0.75)
    # seed part: only GRPO varies (seed means 1, 0: var 0.5), weight 0.5 -> 0.25 * 0.5 / 2; df 1
    assert row["difference"]["se_seeds"] == pytest.approx(math.sqrt(0.0625)) and row["difference"]["df_seeds"] == pytest.approx(1)
    # O1's point (50 tokens) is shorter than SA-GRPO's frontier reaches (60-70): no comparison there
    assert other["at"] == "o1@0.1" and not other["comparable"]
    assert F.verdicts([row, other]) == {"sar vs o1": {"verdict": "not resolved", "comparisons": 1, "above": 0,
                                                     "below": 0, "mean_difference": pytest.approx(0.75)}}
    (h1,) = F.h1_rows(pts, runs)
    assert h1["length_ratio"] == pytest.approx(60 / 70) and not h1["held"]  # 0.857 > 0.8


def test_comparisons_at_penalty_points_and_the_verdicts(F):
    def d(lo, hi):
        return {"comparable": True, "difference": {"mean": (lo + hi) / 2, "ci95": [lo, hi]}}

    rows = [{"sa": "sar", "penalty": "o1", **d(0.01, 0.05)}, {"sa": "sar", "penalty": "o1", **d(-0.02, 0.03)},
            {"sa": "sar", "penalty": "er", **d(-0.05, -0.01)}, {"sa": "sar", "penalty": "er", **d(0.01, 0.02)},
            {"sa": "sar_gdpo", "penalty": "o1", **d(-0.05, -0.01)}, {"sa": "sar_gdpo", "penalty": "er", "comparable": False}]
    v = F.verdicts(rows)
    assert [v[k]["verdict"] for k in ("sar vs o1", "sar vs er", "sar_gdpo vs o1", "sar_gdpo vs er")] == [
        "above", "mixed", "below", "not comparable"]
    # a penalty point inside SA-GRPO's range: SA's frontier there minus the penalty arm
    pts = {"grpo": _pt(0.6, 70.0), "sar@1.0": _pt(0.62, 50.0), "o1@0.1": _pt(0.5, 60.0)}
    runs = {a: {f"{a}-0": [{"id": "p", "correct": True, "length": 1, "style": "concise", "truncated": False}]}
            for a in pts}
    at_o1 = next(r for r in F.frontier_comparisons(pts, runs) if r["at"] == "o1@0.1")
    assert at_o1["between"] == ["grpo", "sar@1.0"] and at_o1["comparable"]


def test_a_folder_keeps_its_design(F, tmp_path):
    F.fixed_design(tmp_path, "smoke")
    (tmp_path / "design.json").write_text(json.dumps({**F.DESIGNS["smoke"], "name": "smoke", "steps": 99}))
    with pytest.raises(SystemExit, match="other settings \\(steps differ\\)"):
        F.fixed_design(tmp_path, "smoke")


def test_smoke_run_end_to_end_and_recomputed_from_the_exported_copy(F, tmp_path, capsys):
    root = tmp_path / "run"
    assert F.main(["run", "--design", "smoke", "-o", str(root), "--workers", "1"]) == 0
    res = json.loads((root / "results.json").read_text())
    budgets = res["warm_starts"]["0"]
    assert set(budgets) == {"2", "4"} and set(budgets["4"]) == {"greedy", "sampled"}
    pts = budgets["4"]["sampled"]["points"]
    assert set(pts) == {"sft", "grpo", "sar@0.5", "o1@0.1"} and all(p["runs"] for p in pts.values())
    assert (root / "frontier_sft0_sampled.png").exists() and (root / "curves.png").exists()
    times = res["step_times"]
    assert set(times) == {"grpo", "sar@0.5", "o1@0.1"} and times["grpo"]["ratio_to_grpo"] == pytest.approx(1.0)
    assert all(t["mean_s"] > 0 for t in times.values())
    head = (root / "results.md").read_text().split("### headline")[1].split("### warm start")[0]
    assert "| SA-GRPO α=0.5 | 1 |" in head and "| D1: SA-GRPO vs O1-Pruner |" in head
    assert "| effective: GRPO − warm start |" in head and "| H1: length <= 0.8x" in head
    capsys.readouterr()
    F.main(["status", str(root)])
    assert capsys.readouterr().out.splitlines() == ["design 'smoke': 3 of 3 runs finished"]
    (root / "metrics" / "o1@0.1-sft0-s0.jsonl.gz").rename(tmp_path / "held.gz")  # as if still evaluating
    F.main(["status", str(root)])
    assert capsys.readouterr().out.splitlines() == ["design 'smoke': 2 of 3 runs finished",
                                                    "in progress: o1@0.1-sft0-s0 (step 4 of 4)"]
    (tmp_path / "held.gz").rename(root / "metrics" / "o1@0.1-sft0-s0.jsonl.gz")
    # SAR by style reads the slim committed samples (no dataset column: --dataset names it)
    sbs, slim = load_benchmark("sar_by_style"), root / "samples" / "sft0" / "step0.sampled.jsonl.gz"
    with pytest.raises(SystemExit, match=r"step0.sampled.jsonl.gz: row 1 has no dataset column; pass --dataset"):
        sbs.main([str(root / "sft0" / "model"), str(slim), "-o", str(tmp_path / "style.json")])
    assert sbs.main([str(root / "sft0" / "model"), str(slim), "--dataset", "synth_chain_v2_val",
                     "-o", str(tmp_path / "style.json")]) == 0
    style = json.loads((tmp_path / "style.json").read_text())
    assert sum(c["n"] for c in style["cells"].values()) == style["answers"] == 12  # 6 problems x 2 samples
    # a rerun reuses everything; the exported copy (design, samples, metrics) recomputes the same numbers
    assert F.main(["run", "--design", "smoke", "-o", str(root), "--workers", "1"]) == 0
    F.main(["export", str(root), str(tmp_path / "copy")])
    assert not (tmp_path / "copy" / "runs").exists() and (tmp_path / "copy" / "sft0" / "model" / "config.json").exists()
    F.main(["analyze", str(tmp_path / "copy")])
    again = json.loads((tmp_path / "copy" / "results.json").read_text())
    assert again["warm_starts"] == res["warm_starts"] and again["step_times"] == res["step_times"]
    # a new folder seeded from the export trains nothing: warm start and runs are reused
    (tmp_path / "copy" / "samples" / "grpo-sft0-s0" / "step4.sampled.jsonl.gz").unlink()  # one evaluation lost
    fresh = tmp_path / "fresh"
    assert F.main(["run", "--design", "smoke", "-o", str(fresh), "--workers", "1", "--seed-from", str(tmp_path / "copy")]) == 0
    assert (fresh / "sft0" / "model" / "config.json").exists() and not (fresh / "sft0" / "checkpoints").exists()
    assert not (fresh / "runs" / "sar@0.5-sft0-s0").exists() and (fresh / "runs" / "grpo-sft0-s0").exists()
    # another design: only warm starts trained with the same settings are taken, never its evaluations
    with pytest.raises(SystemExit, match="trains its warm starts with other settings"):
        F.seed_from(tmp_path / "other", tmp_path / "copy", {**F.DESIGNS["losses"], "name": "losses"})
    F.seed_from(tmp_path / "other", tmp_path / "copy", {**F.DESIGNS["smoke"], "name": "smoke", "steps": 6})
    assert (tmp_path / "other" / "sft0" / "model" / "config.json").exists()
    assert not (tmp_path / "other" / "samples").exists()
