"""The run folder of every training job (sarl.run_folder.RunFolder): refusing to mix runs, the resume
checks, truncation, the one samples.jsonl layout, and `sarl report` on what each engine writes; the
`--engine trl` run folder end to end."""

import json

import pytest
import yaml

from sarl.errors import MissingInputError, OutputExistsError
from sarl.run_folder import RunFolder, sample_rows

CONFIG = {"model": {"name": "tiny-random", "threads": 2}, "actor": {"lr": 0.001, "lr_schedule": "constant"},
          "rewards": {"weights": {"correctness": 1.0, "sar": 0.2}, "schedule": {"type": "constant"}},
          "trainer": {"total_steps": 2, "save_every": 1}}
NATIVE_SAMPLE_KEYS = ["step", "question", "gold", "response", "length", "reward", "reward/correctness", "reward/sar"]


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _started(out, facts=None, steps=2):
    run = RunFolder(out)
    run.check(CONFIG, resume=False)
    run.open(CONFIG, facts=facts or {"engine": "native", "processes": 1})
    for s in range(1, steps + 1):
        run.record({"step": s, "reward/mean": 0.5 * s})
        run.write_samples(sample_rows(s, ["q1", "q2"], ["1", "2"], ["a1", "a2"], [3, 4], [1.0, 0.2],
                                      {"correctness": [1.0, 0.0], "sar": [0.0, 1.0]}, k=1))
    return run


def test_config_yaml_is_the_config_and_facts_go_to_run_yaml(tmp_path):
    _started(tmp_path, {"engine": "trl", "processes": 2, "precision": "fp32"}).close()
    assert (tmp_path / "config.yaml").read_text() == yaml.safe_dump(CONFIG, sort_keys=False)
    assert yaml.safe_load((tmp_path / "run.yaml").read_text()) == {"engine": "trl", "processes": 2, "precision": "fp32"}
    assert RunFolder(tmp_path).saved_facts()["engine"] == "trl"


def test_the_report_reads_the_facts_of_a_folder_from_before_run_yaml(tmp_path):
    from sarl.io import DataError
    from sarl.train_report import load_run

    _started(tmp_path, {"engine": "trl", "processes": 1}).close()
    (tmp_path / "run.yaml").unlink()  # an older TRL folder kept its engine in config.yaml
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "engine": "trl"}, sort_keys=False))
    run = load_run(tmp_path)
    assert run["facts"] == {"engine": "trl"} and run["config"] == CONFIG
    (tmp_path / "config.yaml").write_text("actor: [unclosed")
    with pytest.raises(DataError, match=r"config.yaml: not valid YAML"):
        load_run(tmp_path)


def test_a_new_run_into_a_run_folder_is_refused(tmp_path):
    RunFolder(tmp_path / "new").check(CONFIG, resume=False)  # a missing or empty folder is fine
    _started(tmp_path)
    with pytest.raises(OutputExistsError, match=r"trainer.out_dir .* already holds a run \(metrics.jsonl\); pass --resume"):
        RunFolder(tmp_path).check(CONFIG, resume=False)
    with pytest.raises(FileExistsError, match="choose another -o"):  # OutputExistsError is a FileExistsError
        RunFolder(tmp_path, option="-o").check(CONFIG, resume=False)
    assert len(_lines(tmp_path / "metrics.jsonl")) == 2  # nothing was touched


def test_resume_checks_the_settings_and_the_engine(tmp_path):
    _started(tmp_path)
    RunFolder(tmp_path).check(CONFIG, resume=True, facts={"engine": "native"})
    changed = {**CONFIG, "model": {"name": "tiny-random", "threads": 8}, "trainer": {"total_steps": 3, "save_every": 2}}
    RunFolder(tmp_path).check(changed, resume=True)  # threads, save_every; total_steps with constant schedules
    with pytest.raises(OutputExistsError, match=r"actor.lr: 0.001 before, 0.002 now"):
        RunFolder(tmp_path).check({**CONFIG, "actor": {"lr": 0.002, "lr_schedule": "constant"}}, resume=True)
    with pytest.raises(OutputExistsError, match=r"was run with engine 'native', not 'trl'; resume it with the same engine"):
        RunFolder(tmp_path).check(CONFIG, resume=True, facts={"engine": "trl"})
    RunFolder(tmp_path).check(CONFIG, resume=True, facts={"precision": "bf16-mixed"})  # a fact not saved: not compared


def test_resume_reads_run_folders_written_before_run_yaml(tmp_path):
    """A TRL run kept its engine in config.yaml; an SFT run its settings in config.json."""
    trl = tmp_path / "trl"
    trl.mkdir()
    (trl / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "engine": "trl"}, sort_keys=False))
    (trl / "metrics.jsonl").write_text('{"step": 1}\n')
    RunFolder(trl).check(CONFIG, resume=True, facts={"engine": "trl"})
    with pytest.raises(OutputExistsError, match="engine 'trl', not 'native'"):
        RunFolder(trl).check(CONFIG, resume=True, facts={"engine": "native"})
    from dataclasses import asdict

    from sarl.sft import SFTConfig, check_sft_settings

    sft = tmp_path / "sft"
    sft.mkdir()
    settings = asdict(SFTConfig(new_model="layers=1,hidden=32,heads=2", lr=0.01))
    (sft / "config.json").write_text(json.dumps({**settings, "resolved_precision": "fp32"}, indent=2))
    run = RunFolder(sft, option="-o", settings_check=check_sft_settings)
    run.check({**settings, "threads": 4}, resume=True, facts={"engine": "sft", "precision": "fp32"})
    with pytest.raises(OutputExistsError, match="precision 'fp32', not 'bf16-mixed'"):
        run.check(settings, resume=True, facts={"engine": "sft", "precision": "bf16-mixed"})
    with pytest.raises(OutputExistsError, match=r"lr: 0.01 before, 0.02 now\); resume with the same settings"):
        run.check({**settings, "lr": 0.02}, resume=True)


def test_truncate_keeps_the_steps_of_the_checkpoint(tmp_path):
    run = _started(tmp_path, steps=4)
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 5, "torn')  # a crash mid-line
    run.truncate(2)
    assert [r["step"] for r in _lines(tmp_path / "metrics.jsonl")] == [1, 2]
    assert [r["step"] for r in _lines(tmp_path / "samples.jsonl")] == [1, 2]


def test_record_goes_to_every_logger_and_only_the_main_process_writes(tmp_path):
    class Sink:
        def __init__(self):
            self.seen, self.closed = [], False

        def log(self, metrics, step):
            self.seen.append((step, metrics["reward/mean"]))

        def close(self):
            self.closed = True

    run = RunFolder(tmp_path / "main")
    run.open(CONFIG)
    sink = Sink()
    run.loggers.append(sink)
    run.record({"step": 3, "reward/mean": 0.25})
    run.close()
    assert sink.seen == [(3, 0.25)] and sink.closed and run.loggers == []
    other = RunFolder(tmp_path / "rank1", main=False)
    other.check(CONFIG, resume=False)
    other.open(CONFIG, facts={"engine": "native"}, loggers=["tensorboard"])
    other.record({"step": 1})
    other.write_samples([{"step": 1}])
    other.truncate(0)
    other.close()
    assert not (tmp_path / "rank1").exists()


def test_one_samples_layout():
    rows = sample_rows(7, ["q1", "q2", "q3"], ["1", "2", "3"], ["a1", "a2", "a3"], [5, 6, 7], [1.2, 0.2, 0.0],
                       {"correctness": [1.0, 0.0, 0.0], "sar": [1.0, None, 0.0]}, k=2)
    assert [list(r) for r in rows] == [NATIVE_SAMPLE_KEYS] * 2
    assert rows[1] == {"step": 7, "question": "q2", "gold": "2", "response": "a2", "length": 6, "reward": 0.2,
                       "reward/correctness": 0.0, "reward/sar": None}
    assert sample_rows(1, ["q"], ["g"], ["a"], [1], [0.0], {}, k=0) == []


class _Reward:
    """What sarl.integrations.trl.engine.trl_samples reads of a SarlReward: its name and last batch."""

    def __init__(self, name, values, alpha=None):
        self.__name__ = name
        prompts = [[{"role": "system", "content": "s"}, {"role": "user", "content": f"Q{i} Think."}] for i in range(3)]
        self.last_batch = {"prompts": prompts, "completions": ["a0", "a1", "a2"],
                           "completion_ids": [[1, 2], [1, 2, 3], [4]], "values": values}
        if alpha is not None:
            self.last_batch["alpha"] = alpha


def test_trl_samples_have_the_native_layout():
    from types import SimpleNamespace

    from sarl.integrations.trl.engine import trl_samples
    from sarl.integrations.trl.glue import prompt_key

    funcs = [_Reward("correctness", [1.0, 0.0, 1.0]), _Reward("sar", [0.25, 0.5, 0.0], alpha=0.5)]
    problems = {prompt_key(funcs[0].last_batch["prompts"][i]): SimpleNamespace(question=f"Q{i}", answer=str(i))
                for i in (0, 1)}
    rows = trl_samples(funcs, [1.0, 0.2], problems, step=3, k=3, tokenizer=None)
    assert [list(r) for r in rows] == [NATIVE_SAMPLE_KEYS] * 3
    assert rows[1] == {"step": 3, "question": "Q1", "gold": "1", "response": "a1", "length": 3,
                       "reward": pytest.approx(0.1), "reward/correctness": 0.0, "reward/sar": 1.0}
    assert rows[2]["question"] == "Q2 Think." and rows[2]["gold"] is None  # a prompt of no known problem
    funcs[1].last_batch["alpha"] = 0.0  # the unscaled value cannot be recovered: None, not a division error
    assert trl_samples(funcs, [1.0, 0.2], problems, 3, 1, None)[0]["reward/sar"] is None
    funcs[1].last_batch = None
    assert trl_samples(funcs, [1.0, 0.2], problems, 3, 1, None) == []


def test_report_on_any_samples_layout(tmp_path):
    """`sarl report` on a run folder of `--engine trl` as written before this layout (no gold, length,
    total or reward/ fields; engine in config.yaml) and with missing values: no traceback."""
    from sarl.cli import main

    run = tmp_path / "trl_run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "engine": "trl"}, sort_keys=False))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward/mean": 0.1 * s, "accuracy": None}) + "\n"
                                               for s in (1, 2)))
    (run / "samples.jsonl").write_text(
        json.dumps({"step": 1, "question": "What is 2+2?", "response": "4", "correctness": 1.0}) + "\n"
        + json.dumps({"step": 2, "question": "q", "gold": 7, "response": "a", "length": 3, "reward": None,
                      "reward/sar": None}) + "\n" + json.dumps({"question": "no step"}) + "\n")
    rep = tmp_path / "rep"
    assert main(["report", str(run), "-o", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "| What is 2+2? | - | 4 | - | correctness 1.000 |" in md
    assert "| q | 7 | a | 3 | sar - |" in md and "| engine (run) | \"trl\" |" in md
    assert "Last step: reward 0.200, accuracy -, length -." in md


def test_sarl_train_engine_trl_run_folder(tmp_path, capsys):
    """`--engine trl` writes the native run folder: config.yaml is the recipe (no extra key), run.yaml
    the engine, samples.jsonl the native layout that `sarl report` reads; TensorBoard goes to
    <out>/tensorboard (no runs/<date>), no init_model copy stays; --resume truncates to the checkpoint
    and checks the settings."""
    pytest.importorskip("trl")
    from sarl.cli import main
    from sarl.config import TINY_OVERRIDES, load_config, to_dict

    out = tmp_path / "run"
    over = ["model.name=tiny-random", "data.train=chain_sum", f"trainer.out_dir={out}", "trainer.log_samples=3",
            "trainer.save_every=1", "trainer.keep_last=2", "trainer.precision=fp32"]
    argv = ["train", "cpu/quickstart", "--engine", "trl", "--tiny", *over]
    assert main(argv) == 0
    cfg = load_config("cpu/quickstart", [*TINY_OVERRIDES, *over])
    assert (out / "config.yaml").read_text() == yaml.safe_dump(to_dict(cfg), sort_keys=False)
    assert yaml.safe_load((out / "run.yaml").read_text()) == {"engine": "trl", "processes": 1, "precision": "fp32"}
    samples = _lines(out / "samples.jsonl")
    assert [s["step"] for s in samples] == [1, 1, 1, 2, 2, 2]
    names = [f"reward/{n}" for n in cfg.rewards.weights]
    assert all(list(s) == NATIVE_SAMPLE_KEYS[:6] + names for s in samples)
    assert all(s["gold"] and s["length"] > 0 for s in samples)
    weights = list(cfg.rewards.weights.values())
    for s in samples:  # constant schedule: TRL's total is the weighted sum of the unweighted values
        assert s["reward"] == pytest.approx(sum(w * s[n] for w, n in zip(weights, names)))
    assert not (out / "init_model").exists() and not (out / "runs").exists()
    assert any((out / "tensorboard").iterdir())
    rep = tmp_path / "rep"
    assert main(["report", str(out), "-o", str(rep)]) == 0
    assert "#### step 2" in (rep / "report.md").read_text()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2  # finished: TRL would train a step past the end
    assert "finished its 2 steps" in capsys.readouterr().err
    assert main([*argv, "actor.lr=0.5", "--resume"]) == 2
    assert "actor.lr" in capsys.readouterr().err
    import shutil

    shutil.rmtree(out / "checkpoint-2")  # killed after logging step 2, before its checkpoint was complete
    assert main([*argv, "--resume"]) == 0
    assert [r["step"] for r in _lines(out / "metrics.jsonl")] == [1, 2]  # step 2 redone, not duplicated
    assert [s["step"] for s in _lines(out / "samples.jsonl")] == [1, 1, 1, 2, 2, 2]


def test_engine_trl_resume_without_a_checkpoint_is_explained(tmp_path):
    pytest.importorskip("trl")
    from sarl.config import TINY_OVERRIDES, load_config
    from sarl.integrations.trl.engine import train_trl

    cfg = load_config("cpu/quickstart", [*TINY_OVERRIDES, "model.name=tiny-random", "data.train=chain_sum",
                                         f"trainer.out_dir={tmp_path}"])
    with pytest.raises(MissingInputError, match="no TRL checkpoint"):
        train_trl(cfg, resume=True)
