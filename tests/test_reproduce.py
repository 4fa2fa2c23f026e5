"""benchmarks/reproduce.py: the summary and the goal check (pure), and a tiny end-to-end run."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def R():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _m(acc, length):
    return {"accuracy": acc, "sample_accuracy": acc, "mean_length": length, "truncation_rate": 0.0}


def _results(R, grpo, sa):
    out = {"sft": {mode: {R.IN_DOMAIN: _m(0.5, 60), R.OUT_OF_DOMAIN: _m(0.5, 60)} for mode in R.ACC_KEY}}
    for arm, vals in (("grpo", grpo), ("sa_grpo", sa)):
        for seed, (acc, length) in enumerate(vals):
            out[f"{arm}-s{seed}"] = {mode: {R.IN_DOMAIN: _m(acc, length), R.OUT_OF_DOMAIN: _m(0.4, 50)}
                                     for mode in R.ACC_KEY}
    return out


def test_summary_means_ranges_and_goal(R):
    s = R.summarise(_results(R, [(0.50, 60.0), (0.60, 64.0)], [(0.54, 44.0), (0.55, 48.0)]), ["grpo", "sa_grpo"], [0, 1])
    g = s["arms"]["sampled"]["grpo"][R.IN_DOMAIN]
    assert g["accuracy"] == {"mean": pytest.approx(0.55), "min": 0.5, "max": 0.6, "n": 2}
    assert g["mean_length"]["mean"] == pytest.approx(62.0)
    assert s["goal"]["length_ratio"] == pytest.approx(46.0 / 62.0)
    assert s["goal"]["accuracy_delta_points"] == pytest.approx(-0.5)
    assert s["goal"]["met"] is True
    # shorter but 2 points less accurate: missed; as accurate but only 10% shorter: missed
    assert not R.summarise(_results(R, [(0.5, 60.0)], [(0.48, 40.0)]), ["grpo", "sa_grpo"], [0])["goal"]["met"]
    assert not R.summarise(_results(R, [(0.5, 60.0)], [(0.5, 54.0)]), ["grpo", "sa_grpo"], [0])["goal"]["met"]
    md = R.markdown_table(s, "python benchmarks/reproduce.py", R.parse_args([]))
    assert "| GRPO | 55.0 (50.0–60.0) | 62.0 (60.0–64.0) |" in md and "**met**" in md


def test_tiny_end_to_end_and_resume(R, tmp_path, capsys):
    args = ["-o", str(tmp_path), "--arms", "grpo,sa_grpo", "--seeds", "0", "--steps", "1", "--n", "2",
            "--prompts-per-step", "2", "--max-response", "8", "--eval-limit", "2", "--eval-samples", "2",
            "--sft-model", "layers=1,hidden=32,heads=2", "--sft-tokenizer", "400", "--sft-data",
            "synth_arith=24,synth_logic=8", "--sft-epochs", "1"]
    assert R.main(args) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["runs"]) == {"sft", "grpo-s0", "sa_grpo-s0"}
    assert res["runs"]["sa_grpo-s0"]["sampled"][R.IN_DOMAIN]["samples"] == 4
    assert res["goal"] is not None and (tmp_path / "pareto.png").stat().st_size > 0
    assert (tmp_path / "curves.png").exists() and "SA-GRPO" in (tmp_path / "results.md").read_text()
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
    spec = importlib.util.spec_from_file_location("sar_by_style", ROOT / "benchmarks" / "sar_by_style.py")
    sbs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sbs)
    out = tmp_path / "style.json"
    assert sbs.main([str(tmp_path / "sft" / "model"),
                     str(tmp_path / "eval" / "sampled" / "sft" / "synth_arith_test.samples.jsonl"), "-o", str(out)]) == 0
    style = json.loads(out.read_text())
    assert sum(c["n"] for c in style["cells"].values()) == style["answers"] == 4
    assert all(-1 <= c["mean_sar"] <= 1 for c in style["cells"].values())
    assert sbs.is_padded("Let me think about this step by step. 1 + 1 = 2.") and not sbs.is_padded("1 + 1 = 2.")
    with pytest.raises(SystemExit, match="no finished warm start"):
        R.main(args[:2] + ["--sft-from", str(tmp_path / "nowhere")])
