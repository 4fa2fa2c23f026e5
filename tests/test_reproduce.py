"""benchmarks/reproduce.py: the summary and the goal check (pure), and a tiny end-to-end run."""

import json
from pathlib import Path

import pytest
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def R():
    return load_benchmark("reproduce")


def _rows(correct_by_problem, style="concise", length=40, steps=None):
    """Evaluation rows: problem id -> list of per-sample correctness (steps: id -> step count)."""
    return [{"id": pid, "sample": k, "correct": c, "style": style, "length": length, "truncated": False,
             "steps": (steps or {}).get(pid, 2)}
            for pid, cs in correct_by_problem.items() for k, c in enumerate(cs)]


def _run(acc_a, acc_b, style="concise", length=40):
    # problem "a" (1 step) and "b" (3 steps), two samples each
    rows = _rows({"a": acc_a, "b": acc_b}, style, length, {"a": 1, "b": 3})
    return {"sampled": rows, "greedy": rows}


def test_summary_cells_intervals_and_styles(R):
    rows = {"sft": _run([1, 0], [0, 0]),
            "grpo-s0": _run([1, 1], [1, 0]), "grpo-s1": _run([1, 1], [0, 0]),
            "sa_grpo-s0": _run([1, 1], [1, 0], "restated", 20), "sa_grpo-s1": _run([1, 1], [1, 1], "shortcut", 30)}
    s = R.summarise(rows, ["grpo", "sa_grpo"], [0, 1])["sampled"]
    g = s["grpo"]["all"]
    assert g["accuracy"]["per_seed"] == [0.75, 0.5] and g["accuracy"]["mean"] == pytest.approx(0.625)
    assert g["accuracy"]["problems"] == 2 and g["accuracy"]["ci95"][0] < 0.625 < g["accuracy"]["ci95"][1]
    assert s["grpo"]["multi"]["accuracy"]["mean"] == pytest.approx(0.25)  # problem b only
    assert s["grpo"]["by_steps"]["1"]["accuracy"]["mean"] == 1.0
    sa = s["sa_grpo"]["all"]
    assert sa["styles"]["restated"]["mean"] == 0.5 and sa["styles"]["shortcut"]["mean"] == 0.5
    assert sa["mean_length"] == 25 and s["sft"]["runs"] == ["sft"]
    hyps = {h["id"]: h for h in R.hypotheses(rows, R.summarise(rows, ["grpo", "sa_grpo"], [0, 1]), [0, 1])}
    # GRPO 62.5% vs warm start 25%: +37.5 points, both seeds gain, greedy equal: the bar holds
    assert hyps["bar"]["values"]["gain_points"] == pytest.approx(37.5) and hyps["bar"]["held"]
    # SA-GRPO 25 tokens vs 40 (0.625x) and 87.5% vs 62.5%: H1 holds
    assert hyps["H1"]["values"]["length_ratio"] == pytest.approx(0.625) and hyps["H1"]["held"]
    # every SA-GRPO answer of seed 0 is restated, none of the warm start's: +50 points, not held
    assert hyps["H3"]["values"]["change_points"] == pytest.approx(50.0) and not hyps["H3"]["held"]
    assert "H2a" not in hyps  # no O1-Pruner arm
    md = R.markdown(R.summarise(rows, ["grpo", "sa_grpo"], [0, 1]), list(hyps.values()), "cmd", R.parse_args([]),
                    "synth_chain_test")
    assert "| GRPO | 62.5 [" in md and "**not held**" in md and "| SA-GRPO | 100.0 / 50 / 25 | 75.0 / 50 / 25 |" in md


def test_the_bar_needs_every_seed_to_gain(R):
    rows = {"sft": _run([1, 0], [0, 0]), "grpo-s0": _run([1, 1], [1, 1]), "grpo-s1": _run([0, 0], [0, 0])}
    hyps = {h["id"]: h for h in R.hypotheses(rows, R.summarise(rows, ["grpo"], [0, 1]), [0, 1])}
    assert hyps["bar"]["values"]["gain_points"] == pytest.approx(25.0)
    assert not hyps["bar"]["held"]  # seed 1 lost 25 points


def test_tiny_end_to_end_and_resume(R, tmp_path, capsys):
    args = ["-o", str(tmp_path), "--arms", "grpo,sa_grpo_cr", "--seeds", "0", "--steps", "1", "--n", "2",
            "--prompts-per-step", "2", "--max-response", "8", "--eval-limit", "2", "--eval-samples", "2",
            "--sft-model", "layers=1,hidden=32,heads=2", "--sft-tokenizer", "400", "--sft-data",
            "synth_chain=24", "--sft-epochs", "1"]
    assert R.main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    ds = R.DATASETS["test"]
    assert set(res["runs"]) == {"sft", "grpo-s0", "sa_grpo_cr-s0"} and res["dataset"] == ds
    assert res["runs"]["sa_grpo_cr-s0"]["sampled"][ds]["samples"] == 4
    assert set(res["runs"]["sft"]["sampled"][ds]["style_shares"]) >= {"concise", "padded", "shortcut", "restated"}
    assert {h["id"] for h in res["hypotheses"]} == {"bar", "H3-cr"}
    # the copy-robust arm trained with the copy-robust SAR options
    import yaml

    cfg = yaml.safe_load((tmp_path / "runs" / "sa_grpo_cr-s0" / "config.yaml").read_text())
    assert cfg["rewards"]["options"]["sar"] == {"copy_ngram": 10, "copy_mode": "zero"}
    assert (tmp_path / "pareto.png").stat().st_size > 0
    assert (tmp_path / "curves.png").exists() and "copy-robust" in (tmp_path / "results.md").read_text()
    # a rerun finds everything done: same numbers, nothing retrained
    mtime = (tmp_path / "runs" / "grpo-s0" / "final" / "model.safetensors").stat().st_mtime
    assert R.main(args) == 0
    again = json.loads((tmp_path / "results.json").read_text())["runs"]
    keys = ("samples", "accuracy", "sample_accuracy", "mean_length")  # (timings differ)
    assert {r: {m: {d: [x[k] for k in keys] for d, x in v.items()} for m, v in modes.items()}
            for r, modes in again.items()} == \
        {r: {m: {d: [x[k] for k in keys] for d, x in v.items()} for m, v in modes.items()}
         for r, modes in res["runs"].items()}
    assert (tmp_path / "runs" / "grpo-s0" / "final" / "model.safetensors").stat().st_mtime == mtime
    # SAR by style on the warm start's sampled answers: every answer lands in exactly one cell
    sbs = load_benchmark("sar_by_style")
    out = tmp_path / "style.json"
    assert sbs.main([str(tmp_path / "sft" / "model"),
                     str(tmp_path / "eval" / "sampled" / "sft" / f"{ds}.samples.jsonl"), "-o", str(out)]) == 0
    style = json.loads(out.read_text())
    assert sum(c["n"] for c in style["cells"].values()) == style["answers"] == 4
    assert all(-1 <= c["mean_sar"] <= 1 for c in style["cells"].values())
    assert set(style["cells"]) <= {f"{s}/{c}" for s in ("concise", "padded", "shortcut", "restated", "other")
                                   for c in ("correct", "wrong")}
    with pytest.raises(SystemExit, match="no finished warm start"):
        R.main(args[:2] + ["--sft-from", str(tmp_path / "nowhere")])


def test_hypotheses_use_the_runs_finished_so_far(R):
    """Results are saved after every run: an arm with only some of its seeds done is decided on those."""
    rows = {"sft": _run([1, 0], [0, 0]), "grpo-s0": _run([1, 1], [1, 1])}
    summary = R.summarise(rows, ["grpo"], [0, 1, 2])
    hyps = {h["id"]: h for h in R.hypotheses(rows, summary, [0, 1, 2])}
    assert summary["sampled"]["grpo"]["runs"] == ["grpo-s0"] and hyps["bar"]["values"]["gain_points"] == 75.0
