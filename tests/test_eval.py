"""`sarl eval`, the comparison/AES maths, resume after a crash, and `sarl report`."""

import json

import pytest

from sarl.cli import main
from sarl.evaluate import _sample_stats, aes, comparison


def test_metrics_by_hand():
    rows = [
        {"id": "a", "sample": 0, "correct": True, "length": 10, "truncated": False},
        {"id": "a", "sample": 1, "correct": False, "length": 30, "truncated": True},
        {"id": "b", "sample": 0, "correct": False, "length": 20, "truncated": False},
        {"id": "b", "sample": 1, "correct": True, "length": 40, "truncated": False},
    ]
    m = _sample_stats(rows)
    assert m["hit@1"] == 0.5 and m["hit@n"] == 1.0
    assert m["mean_length"] == 25 and m["mean_correct_length"] == 25 and m["truncation_rate"] == 0.25
    # the headline: accuracy over all samples (2 of 4), SE over problems: both problems at 0.5 -> sd 0
    assert m["accuracy"] == 0.5 == m["sample_accuracy"] and m["accuracy_se"] == 0.0


def test_accuracy_standard_error_by_hand():
    from sarl.evaluate import accuracy_with_se

    # per-problem accuracies 1, 0.5, 0 -> mean of all 6 samples 0.5; sd (ddof 1) = 0.5; SE = 0.5 / sqrt(3)
    acc, se = accuracy_with_se([[True, True], [True, False], [False, False]])
    assert acc == 0.5 and se == pytest.approx(0.5 / 3 ** 0.5)
    assert accuracy_with_se([]) == (None, 0.0) and accuracy_with_se([[True]]) == (1.0, 0.0)
    # unequal sample counts: accuracy is over samples (3 of 4), the SE over per-problem means (1, 2/3)
    acc, se = accuracy_with_se([[True], [True, True, False]])
    # mean 5/6, deviations +-1/6: var (ddof 1) = 2/36, SE = sqrt(var / 2) = 1/6
    assert acc == 0.75 and se == pytest.approx(1 / 6)


def test_paired_standard_error_by_hand():
    from sarl.evaluate import paired_se

    ref = {"a": 0.0, "b": 0.5, "c": 1.0, "x": 1.0}
    cur = {"a": 0.5, "b": 0.5, "c": 1.0, "y": 0.0}
    # shared a, b, c: differences 0.5, 0, 0 -> mean 1/6, var (ddof 1) = ((1/3)^2 + 2 (1/6)^2) / 2 = 1/12
    se, paired = paired_se(ref, cur)
    assert paired and se == pytest.approx((1 / 12 / 3) ** 0.5)
    assert paired_se(ref, {"a": 1.0}) == (None, False) and paired_se(None, cur) == (None, False)
    # the same difference is outside the noise once pairing removes the problems' spread
    r = aes({"accuracy": 0.5, "accuracy_se": 0.1, "mean_length": 10.0, "per_problem_accuracy": {str(i): i % 2 for i in range(40)}},
            {"accuracy": 0.6, "accuracy_se": 0.1, "mean_length": 10.0,
             "per_problem_accuracy": {str(i): (i % 2) + (0.1 if i % 2 == 0 else -0.0) * 2 for i in range(40)}})
    assert r["delta_acc_paired"] and not r["within_noise"]


def test_within_noise_flags_small_differences():
    ref = {"accuracy": 0.50, "accuracy_se": 0.03, "mean_length": 100.0}
    assert aes(ref, {"accuracy": 0.54, "accuracy_se": 0.03, "mean_length": 90.0})["within_noise"]  # 4 < 8.3 points
    far = aes(ref, {"accuracy": 0.62, "accuracy_se": 0.03, "mean_length": 90.0})
    assert not far["within_noise"] and far["delta_acc_points"] == pytest.approx(0.12)


def test_aes_by_hand():
    ref = {"accuracy": 0.5, "mean_length": 200.0}
    cur = {"accuracy": 0.55, "mean_length": 140.0}
    r = aes(ref, cur)
    assert r["delta_len"] == pytest.approx(0.3) and r["delta_acc"] == pytest.approx(0.1)
    assert r["aes"] == pytest.approx(0.3 + 5 * 0.1)
    zero = aes({"accuracy": 0.0, "mean_length": 100.0}, {"accuracy": 0.02, "mean_length": 100.0})
    assert zero["acc_delta_absolute"] and zero["delta_acc"] == pytest.approx(0.02)
    summ = {"models": {"A": {"d": ref}, "B": {"d": cur}}}
    rows = comparison(summ, "A")
    assert [r["model"] for r in rows] == ["A", "B"] and rows[1]["aes"] == pytest.approx(0.8)
    with pytest.raises(KeyError, match="reference model 'C'"):
        comparison(summ, "C")


def test_unknown_dataset_lists_valid_names(tmp_path, capsys):
    assert main(["eval", "--datasets", "gsm9k", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "gsm9k" in err and "gsm8k" in err and "math500" in err


def test_malformed_local_file_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "2"}\n{oops\n')
    assert main(["eval", "--datasets", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "mine.jsonl:2" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_two_models_resume_and_report(tmp_path, lm):
    out = tmp_path / "ev"
    local = str(tmp_path / "copy")
    lm.model.save_pretrained(local)
    lm.tokenizer.save_pretrained(local)
    args = ["eval", "--model", "smollm2-135m", "--model", local, "--datasets", "gsm8k,chain_sum", "--limit", "3",
            "--max-new-tokens", "8", "--batch-size", "2", "-o", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"smollm2-135m", local}
    for per in summary["models"].values():
        for ds in ("gsm8k", "chain_sum"):
            m = per[ds]
            assert m["problems"] == 3 and m["samples"] == 3
            assert m["truncation_rate"] is not None and m["mean_length"] <= 8
    # the copy generates exactly what the original does
    rows = {m: [json.loads(x) for x in (out / d / "gsm8k.samples.jsonl").read_text().splitlines()]
            for m, d in (("a", "smollm2-135m"), ("b", next(p.name for p in out.iterdir() if p.name.endswith("copy"))))}
    assert [r["response"] for r in rows["a"]] == [r["response"] for r in rows["b"]]
    cmp_rows = summary["comparison"]
    assert all(r["delta_len"] == pytest.approx(0.0) for r in cmp_rows if r["model"] != r["reference"])
    assert all(r["delta_len"] is None and r["aes"] is None for r in cmp_rows if r["model"] == r["reference"])
    assert (out / "plots" / "gsm8k.png").exists() and "| gsm8k |" in (out / "compare.md").read_text()

    # crash recovery: drop one problem's rows and tear the last line, as a kill would
    path = out / "smollm2-135m" / "chain_sum.samples.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1]) + "\n" + lines[1][:20])
    assert main(args[:3] + args[5:]) == 0  # only the first model again
    again = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["id"] for r in again] == [json.loads(x)["id"] for x in lines[:1]] + [
        json.loads(x)["id"] for x in lines[1:]]
    assert [r["response"] for r in again] == [json.loads(x)["response"] for x in lines]

    # report: markdown + self-contained HTML, opened in headless Chromium
    rep = tmp_path / "rep"
    assert main(["report", str(out), "-o", str(rep)]) == 0
    page = (rep / "report.html").read_text()
    assert "<table>" in page and "data:image/png;base64," in page and "http" not in page.split("<body>")[1]
    assert "| gsm8k |" in (rep / "report.md").read_text()
    from conftest import screenshot

    img = screenshot(rep / "report.html", tmp_path, timeout=120)
    colored = int(((img.max(-1) - img.min(-1)) > 0.2).sum())  # only the plots' markers are coloured
    dark = (img.mean(-1) < 0.5).mean()  # text, table rules and axes
    assert dark > 0.005 and colored > 100, (dark, colored)


def test_eval_rerun_with_other_settings_refuses(tmp_path, capsys):
    """A rerun with another --max-new-tokens used to reuse samples made with the first one; it refuses,
    naming the setting, and --overwrite regenerates."""
    out = tmp_path / "ev"
    base = ["eval", "--model", "tiny-random", "--datasets", "chain_sum", "--limit", "2", "--batch-size", "2",
            "-o", str(out)]
    assert main(base + ["--max-new-tokens", "6"]) == 0
    assert main(base + ["--max-new-tokens", "6", "--limit", "3"]) == 0  # more problems extend the same samples
    assert main(base + ["--max-new-tokens", "4"]) == 2
    err = capsys.readouterr().err
    assert "gen.max_new_tokens: 6 before, 4 now" in err and "--overwrite" in err
    assert main(base + ["--max-new-tokens", "4", "--overwrite"]) == 0
    rows = [json.loads(x) for x in (out / "tiny-random" / "chain_sum.samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["length"] <= 4 for r in rows)


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none"), "-o", str(tmp_path / "r")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r")]) == 2
    assert "neither summary.json" in capsys.readouterr().err


def test_eval_prints_a_run_time_estimate_after_the_first_batch(tmp_path, capsys):
    """The estimate counts the remaining batches, the smaller last one as a full one (it decodes as many
    steps, so it is slower per problem; it used to be counted per problem); a run that fits one batch
    says so instead of printing nothing."""
    out = tmp_path / "est"
    base = ["eval", "--model", "tiny-random", "--datasets", "chain_sum", "--batch-size", "2", "--max-new-tokens", "4"]
    assert main([*base, "--limit", "5", "-o", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "s for the first batch of 2 problem(s); about" in err
    assert "remaining 3 (2 batch(es), the last of 1 problem(s)" in err
    assert main([*base, "--limit", "1", "-o", str(tmp_path / "one")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "1 problem(s) in one decode batch" in err and "first batch" not in err


def test_first_batch_estimate_by_hand():
    from sarl.evaluate import first_batch_estimate
    from sarl.rollout import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=64)
    # 9 problems in batches of 4: the first took 30 s; 5 remain in 2 batches (4 + 1): 60 s, not 5 x 7.5 s
    text = first_batch_estimate("m", "d", 30.0, 4, 9, 4, cfg)
    assert "about 1.0 min for the remaining 5 (2 batch(es), the last of 1 problem(s)" in text
    assert "the last of" not in first_batch_estimate("m", "d", 30.0, 4, 8, 4, cfg)


def test_eval_refuses_other_settings_before_loading_the_model(tmp_path, capsys, monkeypatch):
    """Resuming into a folder made with other settings refuses before the (slow) model load."""
    import sarl.models

    out = tmp_path / "ev"
    base = ["eval", "--model", "tiny-random", "--datasets", "chain_sum", "--limit", "2", "--batch-size", "2",
            "-o", str(out)]
    assert main(base + ["--max-new-tokens", "4"]) == 0

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the settings were checked")

    monkeypatch.setattr(sarl.models, "load_model", no_load)
    assert main(base + ["--max-new-tokens", "6"]) == 2
    assert "gen.max_new_tokens: 4 before, 6 now" in capsys.readouterr().err
