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
