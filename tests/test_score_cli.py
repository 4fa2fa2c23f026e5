"""`sarl score` end to end on small files with the real default model, and its bad-input errors."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sarl.cli import main
from sarl.scoring import SARScorer

ROWS = [
    {"question": "What is 2+3?", "answer": "2+3=5. The answer is 5.", "gold": "5"},
    {"question": "Tom has 17 apples and buys 8 more. How many?", "answer": "He has 17+8=25. The answer is 26.",
     "gold": "25"},
    {"question": "What is 10 times 3?", "answer": "   ", "gold": "30"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.slow
def test_score_jsonl_end_to_end_and_matches_scorer(tmp_path, lm):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS)
    assert main(["score", str(src), "-o", str(out), "--gold-key", "gold", "--dtype", "float32"]) == 0
    got = read_jsonl(out)
    assert [r["question"] for r in got] == [r["question"] for r in ROWS]
    assert [r["correct"] for r in got] == [True, False, False]
    assert got[2]["status"] == "empty" and got[2]["sar"] == 0.0 and got[2]["answer_tokens"] == 0
    want = SARScorer(lm).score([r["question"] for r in ROWS], [r["answer"] for r in ROWS])
    for g, w in zip(got, want):
        for k in ("ppl_qa", "ppl_a", "sar"):
            assert g[k] == pytest.approx(w[k], abs=1e-4)
        assert -1 <= g["sar"] <= 1
    # --dtype auto scores in fp32 on every machine (bf16 values would depend on the batch); the record
    # names the dtype, so a resume with --dtype bfloat16 refuses instead of mixing
    auto = tmp_path / "auto.jsonl"
    assert main(["score", str(src), "-o", str(auto)]) == 0
    assert json.loads((tmp_path / "auto.jsonl.settings.json").read_text())["dtype"] == "float32"
    for g, w in zip(read_jsonl(auto), want):
        assert g["sar"] == pytest.approx(w["sar"], abs=1e-4)


@pytest.mark.slow
def test_score_resumes_and_keeps_prior_rows(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    with open(src, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["q", "a"])
        w.writeheader()
        for r in ROWS:
            w.writerow({"q": r["question"], "a": r["answer"]})
    args = ["score", str(src), "-o", str(out), "--question-key", "q", "--answer-key", "a"]
    assert main(args) == 0  # a previous run (it leaves its settings record beside the output) ...
    # ... wrote one row and crashed in the middle of the second (the row's values are marked, to show
    # that the rerun keeps them instead of recomputing them)
    first = {"q": ROWS[0]["question"], "a": ROWS[0]["answer"], "ppl_qa": 1.0, "ppl_a": 2.0, "sar": 0.5,
             "answer_tokens": 3, "status": "ok"}
    out.write_text(json.dumps(first) + "\n" + '{"q": "Tom has')
    assert main(args) == 0
    got = read_jsonl(out)
    assert len(got) == 3
    assert got[0] == first  # kept, not recomputed
    assert got[1]["q"] == ROWS[1]["question"] and got[1]["status"] == "ok"


@pytest.mark.slow
def test_score_parquet_with_nested_gold(tmp_path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.jsonl"
    rows = [{"question": r["question"], "answer": r["answer"], "reward_model": {"ground_truth": r["gold"]}}
            for r in ROWS[:2]]
    pq.write_table(pa.Table.from_pylist(rows), src)
    assert main(["score", str(src), "-o", str(out), "--gold-key", "reward_model.ground_truth"]) == 0
    assert [r["correct"] for r in read_jsonl(out)] == [True, False]


def test_missing_file(tmp_path, capsys):
    assert main(["score", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "nope.jsonl: no such file" in capsys.readouterr().err


def test_unreadable_row_names_file_and_line(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    assert main(["score", str(src), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_missing_column_lists_available(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"prompt": "q", "response": "a"}])
    assert main(["score", str(src), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "row 1 has no column 'question'" in err and "available: prompt, response" in err


def test_empty_file(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("\n")
    assert main(["score", str(src), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert "in.jsonl: the file has no rows" in capsys.readouterr().err


@pytest.mark.slow
def test_output_from_another_input_is_not_overwritten(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS)
    other = json.dumps({"question": "something else", "sar": 0.1}) + "\n"
    out.write_text(other)
    assert main(["score", str(src), "-o", str(out)]) == 2
    assert "scored from a different input" in capsys.readouterr().err
    assert out.read_text() == other


@pytest.mark.slow
def test_over_long_answer_is_truncated_and_flagged(lm):
    sc = SARScorer(lm, max_answer_tokens=8)
    r = sc.score(["What is 2+3?"], ["2 plus 3 is 5, because adding three to two gives five. The answer is 5."])[0]
    assert r["status"] == "truncated" and r["answer_tokens"] == 8


def test_unknown_model_fails_fast_with_did_you_mean_and_offline(tmp_path, capsys, monkeypatch):
    """A typo in a model name: a one-line error naming the close built-in name, in well under 2 s, and
    no attempt to reach the hub (downloads are off unless asked for)."""
    import time

    monkeypatch.delenv("SARL_ALLOW_DOWNLOAD", raising=False)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    for name, hint in (("smollm-135m", "smollm2-135m"), ("tiny-randm", "tiny-random"), ("someorg/some-model", None)):
        t = time.perf_counter()
        assert main(["score", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", name]) == 2
        assert time.perf_counter() - t < 2.0
        err = capsys.readouterr().err
        assert f"unknown model {name!r}" in err and "--allow-download" in err and "tiny-random" in err
        if hint:
            assert f"did you mean {hint!r}" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_output_folder_and_binary_input_fail_before_the_model_loads(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    folder = tmp_path / "adir"
    folder.mkdir()
    assert main(["score", str(src), "-o", str(folder), "--model", "no-such-model-at-all"]) == 2
    assert f"{folder}: is a folder" in capsys.readouterr().err  # the output is checked first
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xbb\xff\x00\x01" * 8)
    assert main(["score", str(binary), "-o", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert str(binary) in err and "not UTF-8" in err


def test_resume_with_other_settings_refuses_and_overwrite_replaces(tmp_path, capsys):
    """A rerun with different SAR settings must not keep the old values (it used to resume and print
    tokens_scored 0); it refuses naming the setting, and --overwrite starts over."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"question": f"q{i}", "answer": f"a {i}"}) for i in range(3)) + "\n")
    out = tmp_path / "out.jsonl"
    base = ["score", str(src), "-o", str(out), "--model", "tiny-random"]
    assert main(base) == 0
    first = out.read_text()
    assert main(base) == 0 and out.read_text() == first  # same settings: resumes (nothing to do)
    assert main(base + ["--use-log"]) == 2
    err = capsys.readouterr().err
    assert "sar.use_log: False before, True now" in err and "--overwrite" in err
    assert out.read_text() == first  # nothing lost
    assert main(base + ["--use-log", "--overwrite"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 3 and out.read_text() != first


def _write_input(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        write_jsonl(path, rows)


@pytest.mark.parametrize("suffix, question_key, nest", [
    (".jsonl", "meta.q", lambda r: {"meta": {"q": r["question"]}, "ans": r["answer"], "gold": r["gold"]}),
    (".parquet", "prompt.text", lambda r: {"prompt": {"text": r["question"]}, "ans": r["answer"], "gold": r["gold"]}),
    (".jsonl", "q", lambda r: {"q": r["question"], "ans": r["answer"], "gold": r["gold"]}),
])
def test_rerun_with_a_dotted_question_key_resumes(tmp_path, suffix, question_key, nest):
    """A rerun of the same command used to refuse ("row 1 was scored from a different input") when the
    question sat in a nested column: the output's rows were read with a flat key. It now does nothing,
    and a run cut short goes on from where it stopped."""
    src, out = tmp_path / f"in{suffix}", tmp_path / "out.jsonl"
    _write_input(src, [nest(r) for r in ROWS])
    args = ["score", str(src), "-o", str(out), "--model", "tiny-random", "--question-key", question_key,
            "--answer-key", "ans", "--gold-key", "gold"]
    assert main(args) == 0
    first = out.read_text()
    assert main(args) == 0
    assert out.read_text() == first
    out.write_text(first.splitlines(keepends=True)[0])  # a run that stopped after one row
    assert main(args) == 0
    got = read_jsonl(out)
    assert len(got) == 3 and [r["ans"] for r in got] == [r["answer"] for r in ROWS]
    assert [r["correct"] for r in got] == [r["correct"] for r in map(json.loads, first.splitlines())]


def test_settings_record_is_score_settings(tmp_path, capsys):
    """The record beside the output is ScoreSettings' flat dict; a record written before ScoreSettings
    (no `instruction` key) still resumes, and another SAR variant refuses, naming the key."""
    from sarl.scoring import ScoreSettings

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, ROWS)
    args = ["score", str(src), "-o", str(out), "--model", "tiny-random", "--dtype", "float32"]
    assert main(args) == 0
    path = tmp_path / "out.jsonl.settings.json"
    record = json.loads(path.read_text())
    assert record == ScoreSettings(model="tiny-random", dtype="float32").record()
    assert record["sar.use_log"] is False and record["question_key"] == "question"
    del record["instruction"]
    path.write_text(json.dumps(record))
    assert main(args) == 0
    assert main(args + ["--use-log"]) == 2
    assert "sar.use_log: False before, True now" in capsys.readouterr().err


def test_score_file_refuses_a_scorer_that_is_not_the_recorded_one(tmp_path):
    from sarl.models import load_model
    from sarl.rewards import SARConfig
    from sarl.scoring import ScoreSettings, score_file

    src = tmp_path / "in.jsonl"
    write_jsonl(src, ROWS)
    scorer = SARScorer(load_model("tiny-random"))
    with pytest.raises(ValueError, match="sar differ"):
        score_file(scorer, src, tmp_path / "o.jsonl", settings=ScoreSettings(sar=SARConfig(use_log=True)))


@pytest.mark.parametrize("command", [["score", "in.jsonl", "-o", "o.jsonl"], ["analyze"], ["eval"]])
def test_model_flags_come_from_model_config(command, capsys):
    """--model/--dtype/--device/--threads are generated from ModelConfig (help, default, choices), with
    today's names; eval's --model repeats."""
    from sarl.cli import build_parser
    from sarl.config import ModelConfig

    with pytest.raises(SystemExit):
        build_parser().parse_args([command[0], "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (also at hyphens)
    for flag in ("--model", "--dtype", "--device", "--threads", "--trust-remote-code", "--allow-download"):
        assert flag in text
    for f in ("name", "dtype", "device", "threads"):
        assert "".join(ModelConfig.__dataclass_fields__[f].metadata["help"].split()) in text
    assert "Choices:auto,float32,bfloat16,float16" in text
    args = build_parser().parse_args([*command, "--model", "a", "--model", "b", "--threads", "2"])
    assert args.model == (["a", "b"] if command[0] == "eval" else "b") and args.threads == 2
    assert args.dtype == "auto" and args.device == "auto"
    assert ("Repeattocompareseveralmodels" in text) == (command[0] == "eval")


def test_bad_model_flag_values_fail_before_any_work(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, ROWS)
    assert main(["score", str(src), "-o", str(tmp_path / "o.jsonl"), "--dtype", "float64"]) == 2
    assert "model.dtype: 'float64' is not allowed" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny-random", "--datasets", "chain_sum", "--threads", "0",
                 "-o", str(tmp_path / "ev")]) == 2
    assert "model.threads: must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
