"""`sarl analyze`: variant construction, and the command end to end on real GSM8K problems."""

import json

import pytest

from sarl.analyze import VARIANTS, build_variants
from sarl.cli import main
from sarl.data import load_gsm8k


def test_gsm8k_is_builtin_and_clean():
    data = load_gsm8k()
    assert len(data) == 1319
    assert data[0]["answer"] == "18"
    assert "<<" not in data[0]["solution"] and "####" not in data[0]["solution"]


def test_variants_are_what_they_claim():
    probs = load_gsm8k()[:20]
    v = build_variants(probs, seed=0)
    assert set(v) == set(VARIANTS)
    for i, p in enumerate(probs):
        assert v["gold"][i].endswith(f"The answer is {p['answer']}.")
        assert not v["wrong_final"][i].endswith(f"The answer is {p['answer']}.")
        assert v["wrong_final"][i].rsplit("The answer is", 1)[0] == v["gold"][i].rsplit("The answer is", 1)[0]
        assert 1.7 < len(v["redundant"][i]) / len(v["gold"][i]) < 3.0
        assert len(v["partial"][i]) < len(v["gold"][i])
        assert v["irrelevant"][i] == v["gold"][(i + 1) % len(probs)]
        assert p["question"] in v["restated"][i]
    assert build_variants(probs, seed=0) == v  # deterministic


@pytest.mark.slow
def test_analyze_end_to_end(tmp_path, lm):
    out = tmp_path / "an"
    assert main(["analyze", "--limit", "4", "-o", str(out)]) == 0
    res = json.loads((out / "analysis.json").read_text())
    assert res["n"] == 4 and set(res["means"]) == set(VARIANTS)
    for w in res["win_rates"].values():
        assert 0.0 <= w["sar"] <= 1.0
    rows = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * len(VARIANTS)
    assert (out / "analysis.png").stat().st_size > 10_000
    assert "| gold |" in (out / "analysis.md").read_text()


def test_extra_restatements_leave_the_six_variants_alone():
    from sarl.analyze import EXTRA_VARIANTS, build_extra_variants, paraphrase

    probs = load_gsm8k()[:20]
    v = build_variants(probs, seed=0)
    before = {k: list(x) for k, x in v.items()}
    e = build_extra_variants(probs, seed=0, base=v)
    assert v == before and build_variants(probs, seed=0) == before  # the six outputs are untouched
    assert set(e) == set(EXTRA_VARIANTS) and build_extra_variants(probs, seed=0) == e  # deterministic
    for i, p in enumerate(probs):
        wrong = v["restated"][i].rsplit("The answer is ", 1)[1]
        assert e["restated_lead"][i].endswith(f"the final result is {wrong}") and p["question"] in e["restated_lead"][i]
        assert e["restated_paraphrase"][i].endswith(f"The answer is {wrong}")
        assert p["question"] not in e["restated_paraphrase"][i]
        assert e["restated_gold"][i] == f"{p['question']} {v['gold'][i]}"
        assert e["restated_interleaved"][i].endswith(f"The answer is {p['answer']}.")
        shuffled = e["restated_shuffled"][i].rsplit(" The answer is", 1)[0]
        assert sorted("".join(shuffled.split())) == sorted("".join(p["question"].split()))  # same sentences
    # one pass of whole-word substitutions, numbers kept
    assert paraphrase("How many apples has Tom in 3 bags?") == "What is the number of apples owns Tom within 3 bags?"


def test_analyze_reports_every_setting_side_by_side(tmp_path):
    """``analyze`` on a tiny random model (fast): the copy-robust columns, P(restated > gold), the plot,
    and old two-setting results still render."""
    from sarl.analyze import EXTRA_VARIANTS, SETTINGS, AnalysisResult, analyze, markdown_table, write_report
    from sarl.models import LoadedModel, tiny_random_model
    from sarl.scoring import SARScorer

    model, tok = tiny_random_model()
    scorer = SARScorer(LoadedModel(model=model, tokenizer=tok, name="tiny", device="cpu"))
    res = analyze(scorer, load_gsm8k()[:3], extra=True)
    assert set(res.means) == set(VARIANTS) | set(EXTRA_VARIANTS)
    for m in res.means.values():
        assert set(SETTINGS) <= set(m)
    assert set(res.win_rates["restated>gold"]) == set(SETTINGS)
    assert "restated_gold>gold" in res.win_rates
    paths = write_report(res, tmp_path, "tiny")
    md = paths["md"].read_text()
    assert "SAR (copy-robust)" in md and "P(restated > gold)" in md and "| restated_half |" in md
    assert json.loads(paths["json"].read_text())["variants"]["restated_lead"]
    old = AnalysisResult(n=3, means={k: {"sar": 0.1, "sar_log": 0.2, "tokens": 5.0} for k in VARIANTS},
                         win_rates={"gold>redundant": {"sar": 0.5, "sar_log": 0.5}}, rows=[])
    assert "| gold |" in markdown_table(old, "old") and "copy-robust" not in markdown_table(old, "old")
