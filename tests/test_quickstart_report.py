"""The quickstart report tells the run's story (sarl.quickstart_report): settings, the verdict in accuracy
points with 95% intervals, both training runs' curves, accuracy by steps, styles and the same example
problems for the three models. Built from a real tiny quickstart folder, whose run is checked here too
(the default path: warm start, SA-GRPO and GRPO side by side, SA-GRPO - GRPO)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from sarl.stats import Z95

SFT = {"synthetic_tasks": {"synth_chain_v2": 24}, "new_model": "layers=1,hidden=32,heads=2", "new_tokenizer": 400,
       "epochs": 1.0, "batch_size": 16}
SECTIONS = ("## 1. What ran", "## 2. The verdict", "## 3. Training curves", "## 4. Accuracy by number of steps",
            "## 5. Answer styles", "## 6. Example answers")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    from rich.console import Console

    from sarl.quickstart import run_quickstart

    out = tmp_path_factory.mktemp("qs")
    sft = SFT
    extra = ["data.max_response_length=8", "trainer.prompts_per_step=2", "rollout.n=2"]
    res = run_quickstart(out, steps=1, limit=2, console=Console(quiet=True), progress_factory=None,
                         extra=extra, sft_overrides=sft, parallel=True)
    return out, res


def _row(md: str, first_cell: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_tells_the_story_in_order(quickstart):
    out, res = quickstart
    assert res["report"] == {"md": out / "report" / "report.md", "html": out / "report" / "report.html"}
    md = res["report"]["md"].read_text()
    assert [md.index(s) for s in SECTIONS] == sorted(md.index(s) for s in SECTIONS)
    # what ran: the warm start, the RL recipe (both arms) and the evaluation
    assert "layers=1,hidden=32,heads=2" in md and "24 synth_chain_v2 problems" in md
    assert "1 step of 2 prompts × 2 rollouts" in md and "α = 1" in md and "GRPO (correctness only)" in md
    assert "2 held-out problems of synth_chain_v2_test" in md and "4 samples per problem" in md
    assert "not a measured effect of SAR" in md
    for png in ("curves.png", "curves_other.png", "accuracy_by_steps.png", "styles.png"):
        assert (out / "report" / "plots" / png).exists() and f"](plots/{png})" in md
    page = res["report"]["html"].read_text()
    assert page.count("data:image/png;base64,") == 4 and "**" not in page  # bold rendered, images inlined
    assert "<table>" in page and "<pre>" in page and "<li><strong>Warm start</strong>" in page
    assert [page.index(s.removeprefix("## ")) for s in SECTIONS] == sorted(page.index(s.removeprefix("## "))
                                                                           for s in SECTIONS)


def test_verdict_numbers_are_points_from_before_after(quickstart, tmp_path):
    """The table shows before_after.json in points; set distinct numbers in a copy to tell them apart."""
    from sarl.quickstart_report import build_quickstart_report

    out = tmp_path / "qs"
    shutil.copytree(quickstart[0], out, ignore=shutil.ignore_patterns("checkpoints", "*.safetensors"))
    table = json.loads((out / "before_after.json").read_text())
    table["after"].update(accuracy=0.625, accuracy_se=0.05, mean_length=6.0)
    table["grpo"].update(accuracy=0.5, accuracy_se=0.04, mean_length=7.5)
    table["sa_grpo_minus_grpo"].update(accuracy_points=0.125, se=0.03, within_noise=False, length_ratio=0.8)
    (out / "before_after.json").write_text(json.dumps(table))
    md = build_quickstart_report(out)["md"].read_text()
    for name, key in (("SA-GRPO", "after"), ("GRPO", "grpo")):
        m = table[key]
        lo, hi = (m["accuracy"] - Z95 * m["accuracy_se"]) * 100, (m["accuracy"] + Z95 * m["accuracy_se"]) * 100
        assert _row(md, name)[1] == f"{m['accuracy'] * 100:.1f} [{lo:.1f}, {hi:.1f}]"
        assert _row(md, name)[5] == f"{m['mean_length']:.1f}"
    diff = _row(md, "SA-GRPO − GRPO (what SAR adds)")
    assert float(diff[1]) == pytest.approx(100 * (table["after"]["accuracy"] - table["grpo"]["accuracy"]))
    assert diff[2] == f"[{12.5 - Z95 * 3:+.1f}, {12.5 + Z95 * 3:+.1f}]" and diff[3].startswith("outside the noise")
    assert diff[4] == "0.80×"
    ch = table["change"]
    assert float(_row(md, "SA-GRPO vs warm start")[1]) == pytest.approx(100 * ch["accuracy_points"], abs=0.05)
    # accuracy by steps: each model's by_steps accuracy in points
    from sarl.quickstart_report import load_quickstart

    q = load_quickstart(out)
    for k, m in q["evals"]["after"]["metrics"]["by_steps"].items():
        assert _row(md, k)[1] == str(m["problems"]) and _row(md, k)[3].startswith(f"{m['accuracy'] * 100:.1f} [")


def test_examples_are_the_same_problems_in_full(quickstart):
    from sarl.quickstart_report import _printable, load_quickstart, pick_examples

    out, res = quickstart
    md = res["report"]["md"].read_text()
    q = load_quickstart(out)
    ids = pick_examples(q)
    assert len(ids) == 2  # every problem of the tiny evaluation, at most 3
    blocks = md.split("## 6. Example answers")[1].split("### Problem ")[1:]
    assert len(blocks) == len(ids)
    for pid, block in zip(ids, blocks):
        assert f"`{pid}`" in block
        for key, name in (("before", "warm start"), ("after", "SA-GRPO"), ("grpo", "GRPO")):
            row = next(r for r in q["evals"][key]["samples"] if r["id"] == pid and r["sample"] == 0)
            label = re.search(rf"\*\*{re.escape(name)}\*\*: (✓ correct|✗ wrong), style (\w+)", block)
            assert label and label.group(1).startswith("✓" if row["correct"] else "✗") and label.group(2) == row["style"]
            assert "\n" + _printable(row["response"]) + "\n" in block  # the whole answer, never cut


def test_markdown_subset_renders_as_html():
    from sarl.quickstart_report import running_mean
    from sarl.report import md_to_html

    page = md_to_html("- **a** b\n- c\n\n> 2 ** 3 <x>\n\n````\nx ``` y\n**raw**\n````\n| h |\n|---|\n| 1 |")
    assert page.startswith("<ul><li><strong>a</strong> b</li><li>c</li></ul>")
    assert "<blockquote>2 ** 3 &lt;x&gt;</blockquote>" in page and "<pre>x ``` y\n**raw**</pre>" in page
    assert page.endswith("<tbody><tr><td>1</td></tr></tbody></table>")
    assert running_mean([1, 2, 3, 4], window=2) == [1, 1.5, 2.5, 3.5]


def test_report_renders_with_coloured_curves(quickstart, tmp_path):
    from conftest import screenshot

    img = screenshot(quickstart[1]["report"]["html"], tmp_path, height=3000)
    colored = (img.max(-1) - img.min(-1)) > 0.2  # curves, their legends and the bars; text and tables are grey
    # the first 2000 pixels hold sections 1-3: every coloured pixel there is a training curve (one step here:
    # a dot per metric and run) or its legend
    assert (img.mean(-1) < 0.5).mean() > 0.005 and colored[:2000].sum() > 800, int(colored[:2000].sum())


def test_quickstart_default_path_warm_starts_then_trains(quickstart):
    """The default quickstart (the fixture's run): SFT warm start on the synthetic corpus (tiny here),
    sampled evaluation on held-out problems, SA-GRPO and GRPO side by side (GRPO in a `sarl train`
    process), evaluation, SA-GRPO - GRPO; a second call reuses the warm start."""
    from rich.console import Console

    from sarl.quickstart import warm_start

    out, res = quickstart
    assert res["dataset"] == "synth_chain_v2_test" and res["decoding"].startswith("sampled")
    for name in ("before", "after", "grpo"):
        m = res["table"][name]
        assert 0 <= m["accuracy"] <= 1 and m["mean_length"] <= 8 and -1 <= m["mean_sar"] <= 1
        assert m["accuracy_se"] >= 0 and m["hit@1"] is not None and m["hit@n"] >= m["hit@1"]
        assert sum(m["style_shares"].values()) == pytest.approx(1.0)  # every sample has a style
        assert m["multi_step_accuracy"] is None or 0 <= m["multi_step_accuracy"]["accuracy"] <= 1
    t = res["table"]
    assert t["change"]["accuracy_points"] == pytest.approx(t["after"]["accuracy"] - t["before"]["accuracy"])
    assert isinstance(t["change"]["within_noise"], bool)
    vs = t["sa_grpo_minus_grpo"]
    assert vs["accuracy_points"] == pytest.approx(t["after"]["accuracy"] - t["grpo"]["accuracy"])
    assert vs["length_ratio"] == pytest.approx(t["after"]["mean_length"] / t["grpo"]["mean_length"])
    # the baseline is the same run with the correctness reward only, trained in its own process
    import yaml

    saved = yaml.safe_load((out / "train_grpo" / "config.yaml").read_text())
    assert saved["rewards"]["weights"] == {"correctness": 1.0} and saved["model"]["threads"] == 1
    assert (out / "train_grpo" / "final" / "config.json").exists() and (out / "train_grpo.log").exists()
    samples = (out / "eval" / "before" / "synth_chain_v2_test.samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * 4  # 2 problems x 4 samples
    assert (out / "sft" / "model" / "tokenizer.json").exists() and (out / "train" / "final" / "config.json").exists()
    console = Console(record=True, width=200)
    assert warm_start(out / "sft", console, None, SFT) == out / "sft" / "model"
    assert "reusing" in console.export_text()
