"""The TRL integration (sarl.integrations.trl).

End to end: GRPO steps on the tiny random Llama with SARGRPOTrainer, and the SAR values the plug-in
returned for each step's completions compared with SARScorer (what `sarl score` computes) under the
weights of that step (a snapshot taken when the step began, i.e. before its optimizer update). Then the
reuse of TRL's old log-probs, the group rewards (hand-computed, and across two processes), correctness.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch

from sarl.integrations.trl import SarlReward, sarl_reward_funcs
from sarl.prompts import DEFAULT_SYSTEM_PROMPT, encode, render_prompt

TOL = 1e-4


# --------------------------------------------------------------------------------------- training runs
def _train(tmp_path: Path, rewards: list[SarlReward], weights: list[float], **config):
    """Train the tiny model with SARGRPOTrainer; return (trainer, {global_step: weights at step start})."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig

    from sarl.data import load_dataset
    from sarl.integrations.trl import SARGRPOTrainer
    from sarl.models import load_model

    lm = load_model("tiny-random")
    problems = load_dataset("basic_arithmetic", limit=8)
    ds = Dataset.from_list([
        {"prompt": [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": p.question}],
         "answer": p.answer, "data_source": p.data_source}
        for p in problems
    ])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    class Snapshot(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kw):
            snapshots[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
        learning_rate=1e-2,  # large, so that the weights of step 1 differ measurably from step 0's
        bf16=False, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
        seed=0, reward_weights=weights, **config,
    )
    trainer = SARGRPOTrainer(model=lm.model, processing_class=lm.tokenizer, args=args, reward_funcs=rewards,
                             train_dataset=ds, callbacks=[Snapshot()])
    trainer.train()
    return trainer, snapshots


@pytest.fixture(scope="module")
def scorer_model():
    """A second tiny model; each check loads a snapshot's weights into it."""
    from sarl.models import load_model

    return load_model("tiny-random")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """TRL's default schedule (one iteration per generation: TRL computes no old log-probs), 2 steps."""
    rewards = [SarlReward("correctness"), SarlReward("sar", keep_history=10), SarlReward("entropy", keep_history=10),
               SarlReward("self_certainty", keep_history=10)]
    trainer, snaps = _train(tmp_path_factory.mktemp("trl_default"), rewards, [1.0, 0.2, 0.0, 0.0], max_steps=2)
    return trainer, dict(zip(["correctness", "sar", "entropy", "self_certainty"], rewards)), snaps


@pytest.fixture(scope="module")
def reuse_run(tmp_path_factory):
    """num_iterations=2: TRL computes the old policy's log-probs, which SAR reuses. 2 steps = 1 generation."""
    sampled = SarlReward("sar", label="sar_sampled", answer_tokens="sampled", keep_history=10)
    text = SarlReward("sar", keep_history=10)
    trainer, snaps = _train(tmp_path_factory.mktemp("trl_reuse"), [sampled, text], [0.2, 0.2], max_steps=2,
                            num_iterations=2)
    return trainer, sampled, text, snaps


def _load(lm, state_dict):
    lm.model.load_state_dict(state_dict)
    return lm


def test_sar_matches_sarl_score_with_the_weights_of_each_step(default_run, scorer_model):
    from sarl.scoring import SARScorer

    trainer, rewards, snaps = default_run
    history = rewards["sar"].history
    assert [r["step"] for r in history] == [0, 1]
    for rec in history:
        assert rec["mode"] == "train" and rec["systems"] == [DEFAULT_SYSTEM_PROMPT] * 4
        assert rec["reused_rows"] == 0  # one iteration per generation: TRL computed nothing to reuse
        rows = SARScorer(_load(scorer_model, snaps[rec["step"]])).score(rec["questions"], rec["completions"])
        for row, sar, qa, a in zip(rows, rec["values"], rec["ppl_qa"], rec["ppl_a"]):
            assert abs(row["sar"] - sar) < TOL
            assert abs(row["ppl_qa"] - qa) / row["ppl_qa"] < TOL and abs(row["ppl_a"] - a) / row["ppl_a"] < TOL
        assert [r["status"] for r in rows] == rec["status"]

    # The comparison is sensitive to the weights: step 1's values are not what the initial weights give.
    last = history[-1]
    initial = SARScorer(_load(scorer_model, snaps[0])).score(last["questions"], last["completions"])
    assert max(abs(r["sar"] - v) for r, v in zip(initial, last["values"])) > 10 * TOL

    # What TRL logged is what the plug-in returned (TRL stores rewards as float32).
    logged = {h["step"]: h for h in trainer.state.log_history if "rewards/sar/mean" in h}
    for rec in history:
        log = logged[rec["step"] + 1]
        assert log["rewards/sar/mean"] == pytest.approx(sum(rec["values"]) / len(rec["values"]), abs=1e-6)
        assert log["sar/ppl_qa"] == pytest.approx(sum(rec["ppl_qa"]) / 4, rel=1e-5)
        assert log["sar/reused_fraction"] == 0


def test_entropy_and_self_certainty_use_the_same_logprobs(default_run, scorer_model):
    from sarl.logprobs import answer_logprobs
    from sarl.rewards import mean_nll

    trainer, rewards, snaps = default_run
    tok = trainer.processing_class
    for ent, sc in zip(rewards["entropy"].history, rewards["self_certainty"].history):
        assert ent["step"] == sc["step"] and ent["answer_ids"] == sc["answer_ids"]
        model = _load(scorer_model, snaps[ent["step"]]).model
        ctx = [encode(tok, render_prompt(tok, q, s)) for q, s in zip(ent["questions"], ent["systems"])]
        out = answer_logprobs(model, ctx, ent["answer_ids"], pad_token_id=tok.pad_token_id, stats=("self_certainty",))
        want_ent = (-mean_nll(out.logp, out.mask)).tolist()
        want_sc = ((out.stats["self_certainty"] * out.mask).sum(-1) / out.mask.sum(-1).clamp(min=1)).tolist()
        assert max(abs(a - b) for a, b in zip(want_ent, ent["values"])) < TOL
        assert max(abs(a - b) for a, b in zip(want_sc, sc["values"])) < TOL
        assert ent["ppl_a"] is None  # no null-context pass for rewards that do not need it


def test_reuse_of_trl_old_logprobs(reuse_run, scorer_model):
    """ppl(a|q) read from TRL's old-policy log-probs equals a fresh answer_logprobs pass."""
    from sarl.logprobs import answer_logprobs
    from sarl.rewards import SARConfig, perplexity, self_aligned_reward
    from sarl.scoring import SARScorer

    trainer, sampled, text, snaps = reuse_run
    assert trainer.trl_computes_old_logprobs()
    assert trainer._sarl_old_logps is None  # dropped once the batch was scored
    assert [r["step"] for r in sampled.history] == [0]  # step 1 reuses the generation batch
    rec = sampled.history[0]
    assert rec["reused_rows"] == len(rec["values"]) == 4  # sampled ids always match TRL's tokens
    assert rec["answer_ids"] == rec["completion_ids"]  # stop token included when sampled
    lm = _load(scorer_model, snaps[0])
    tok = lm.tokenizer
    ctx = [encode(tok, render_prompt(tok, q, s)) for q, s in zip(rec["questions"], rec["systems"])]
    null = [encode(tok, render_prompt(tok, "", s)) for s in rec["systems"]]
    qa = answer_logprobs(lm.model, ctx, rec["answer_ids"], pad_token_id=tok.pad_token_id)
    a = answer_logprobs(lm.model, null, rec["answer_ids"], pad_token_id=tok.pad_token_id)
    want = self_aligned_reward(qa.logp, a.logp, qa.mask, SARConfig())
    assert max(abs(x - y) for x, y in zip(want["sar"].tolist(), rec["values"])) < TOL
    assert max(abs(x - y) / x for x, y in zip(perplexity(qa.logp, qa.mask).tolist(), rec["ppl_qa"])) < TOL

    # Text mode reuses the rows whose re-encoded text is a prefix of the sampled ids, and still equals
    # `sarl score` (rows that do not re-encode identically are recomputed).
    trec = text.history[0]
    assert trec["completions"] == rec["completions"]
    rows = SARScorer(lm).score(trec["questions"], trec["completions"])
    assert max(abs(r["sar"] - v) for r, v in zip(rows, trec["values"])) < TOL
    expect = sum(ids == full[: len(ids)] for ids, full in zip(trec["answer_ids"], trec["completion_ids"]))
    assert trec["reused_rows"] == expect >= 1


# --------------------------------------------------------------------------------------- errors
def test_policy_reward_without_a_trainer_explains_binding():
    sar = SarlReward("sar")
    with pytest.raises(RuntimeError, match=r"(?s)reward\.bind\(trainer\).*SARGRPOTrainer"):
        sar(prompts=[[{"role": "user", "content": "1+1?"}]], completions=["2"], completion_ids=[[17]])
    with pytest.raises(TypeError, match="GRPOTrainer"):
        sar.bind(object())


def test_plain_string_prompts_are_rejected(default_run):
    _trainer, rewards, _ = default_run
    with pytest.raises(TypeError, match="conversational prompts"):
        rewards["sar"](prompts=["What is 1+1?"], completions=["2"], completion_ids=[[17]])


def test_names_options_and_reward_funcs():
    assert SarlReward("ppl_qa").__name__ == "sar"  # the reference's alias
    assert SarlReward("sar", {"use_log": True}).options.use_log
    assert SarlReward("sar", label="sar_log").__name__ == "sar_log"
    assert not SarlReward("sar", {"use_comparison": False, "use_denominator": False}).needs & {"logp_a"}
    funcs, weights = sarl_reward_funcs({"correctness": 1.0, "sar": 0.2}, gold_column="solution")
    assert [f.__name__ for f in funcs] == ["correctness", "sar"] and weights == [1.0, 0.2]
    assert funcs[0].gold_column == "solution" and funcs[1].needs_policy and not funcs[0].needs_policy
    with pytest.raises(KeyError, match="unknown reward"):
        SarlReward("nope")
    with pytest.raises(ValueError, match="no option"):
        SarlReward("sar", {"use_logs": True})
    with pytest.raises(ValueError, match="not in weights"):
        sarl_reward_funcs({"sar": 1.0}, options={"entropy": {}})


# --------------------------------------------------------------------------------------- correctness
def test_correctness_reward():
    r = SarlReward("correctness")
    completions = [[{"role": "assistant", "content": c}] for c in ["5", "so the answer is 5.", "7", "", "5"]]
    out = r(prompts=[[{"role": "user", "content": "2+3?"}]] * 5, completions=completions,
            completion_ids=[[1]] * 5, answer=["5", "5", "5", "5", None])
    assert out == [1.0, 1.0, 0.0, 0.0, 0.0]  # a missing gold scores 0, like sarl's correctness reward
    with pytest.raises(ValueError, match=r"column 'answer'.*gold_column"):
        r(prompts=["q"], completions=["5"], completion_ids=[[1]], solution=["5"])
    assert SarlReward("correctness", gold_column="solution")(prompts=["q"], completions=["5"], solution=["5"]) == [1.0]


def test_correctness_reward_uses_the_data_source_grader_and_metadata():
    from sarl.data import load_dataset
    from sarl.grading import grade

    p = load_dataset("basic_arithmetic", limit=1)[0]
    r = SarlReward("correctness", metadata_column="metadata")
    texts = [f"The result is {p.answer}.", "The result is 3.", f"<answer>{p.answer}</answer>"]
    out = r(prompts=["q"] * 3, completions=texts, answer=[p.answer] * 3, data_source=[p.data_source] * 3,
            metadata=[json.dumps(p.metadata)] * 3)
    assert out == [float(grade(t, p.answer, problem=p).correct) for t in texts] == [1.0, 0.0, 1.0]


# --------------------------------------------------------------------------------------- group rewards
def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_group_rewards_hand_computed():
    user = [{"role": "user", "content": "2+3?"}]
    # o1_pruner, G = 2: groups (2, 4) and (3, 3) tokens; -clip((L - mean) / L, -1, 1).
    other = [{"role": "user", "content": "other"}]
    o1 = SarlReward("o1_pruner", num_generations=2)
    out = o1(prompts=[user, user, other, other], completions=["a"] * 4,
             completion_ids=[[1] * 2, [1] * 4, [1] * 3, [1] * 3])
    assert out == pytest.approx([0.5, -0.25, 0.0, 0.0])

    # One group of G = 4: lengths 2, 4, 3, 6; correct 1, 1, 0, 1 (gold 5).
    kw = {"prompts": [user] * 4, "completions": ["5", "it is 5", "7", "5"],
          "completion_ids": [[1] * 2, [1] * 4, [1] * 3, [1] * 6], "answer": ["5"] * 4}
    # Efficient Reasoner: correct lengths {2, 4, 6}: mu = 4, sigma = sqrt(8/3) (ddof 0).
    sigma = math.sqrt(8 / 3)
    pen = 2 * _sigmoid(2 / (sigma + 1e-5)) - 1
    assert SarlReward("efficient_reasoner", num_generations=4)(**kw) == pytest.approx([pen, 0.0, 0.0, -pen])
    # Kimi k1.5: lambda = 0.5 - (L - 2) / (6 - 2) = 0.5, 0, 0.25, -0.5; wrong answers get min(0, lambda).
    assert SarlReward("kimi_length", num_generations=4)(**kw) == pytest.approx([0.5, 0.0, 0.0, -0.5])


def test_group_reward_errors():
    user = [{"role": "user", "content": "q"}]
    kw = {"completions": ["a"] * 4, "completion_ids": [[1]] * 4}
    with pytest.raises(RuntimeError, match="num_generations"):
        SarlReward("o1_pruner")(prompts=[user] * 4, **kw)
    with pytest.raises(ValueError, match="not a multiple of num_generations=3"):
        SarlReward("o1_pruner", num_generations=3)(prompts=[user] * 4, **kw)
    mixed = [user, [{"role": "user", "content": "other"}], user, user]
    with pytest.raises(ValueError, match="do not share one prompt"):
        SarlReward("o1_pruner", num_generations=2)(prompts=mixed, **kw)


_WORKER = textwrap.dedent("""
    import json, sys
    from accelerate import PartialState
    state = PartialState(cpu=True)  # 2 processes over gloo, as under `accelerate launch --cpu`
    from sarl.integrations.trl import SarlReward
    rank = state.process_index
    prompts = [[{"role": "user", "content": f"q{i // 2}"}] for i in range(6)]
    lengths = [2, 4, 3, 3, 5, 1]
    local = slice(3 * rank, 3 * rank + 3)  # 3 completions per process, G = 2: group 1 spans both processes
    out = SarlReward("o1_pruner", num_generations=2)(
        prompts=prompts[local], completions=["x"] * 3, completion_ids=[[7] * n for n in lengths[local]])
    print("RESULT", json.dumps({"rank": rank, "world": state.num_processes, "out": out}), flush=True)
    state.wait_for_everyone()
    state.destroy_process_group()
""")


def test_group_reward_across_processes_sees_whole_groups(tmp_path):
    """TRL's local slices can split a group (here 3 completions per process, G = 2); the reward gathers
    the batch and returns what one process computing all 6 completions returns."""
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
               "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = {}
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
        line = next(x for x in out.splitlines() if x.startswith("RESULT "))
        res = json.loads(line[len("RESULT "):])
        assert res["world"] == 2
        results[res["rank"]] = res["out"]
    single = SarlReward("o1_pruner", num_generations=2)(
        prompts=[[{"role": "user", "content": f"q{i // 2}"}] for i in range(6)], completions=["x"] * 6,
        completion_ids=[[7] * n for n in [2, 4, 3, 3, 5, 1]])
    assert results[0] + results[1] == pytest.approx(single)
    assert single == pytest.approx([0.5, -0.25, 0.0, 0.0, -0.4, 1.0])  # (1 - 3) / 1 = -2 is clipped to -1


def test_copy_robust_sar_through_trl(tmp_path):
    """The copy-robust SAR options reach the TRL plug-in (the adapter supplies the token ids)."""
    from sarl.rewards import SARConfig

    r = SarlReward("sar", SARConfig.copy_robust(copy_ngram=3), keep_history=4)
    assert r.needs_policy and "token_ids" in r.needs
    _train(tmp_path, [r], [1.0], max_steps=1)
    assert r.history and all(math.isfinite(v) for rec in r.history for v in rec["values"])


def test_private_method_reuse_switches_itself_off_on_an_unchecked_trl(monkeypatch, caplog):
    """The one module that depends on TRL's internals is gated on the versions whose internals were
    checked; on any other it switches reuse off and says so once in the log."""
    import logging

    import trl

    from sarl.integrations.trl import reuse

    assert reuse.trl_reuse_verified()  # the installed TRL is a checked one
    monkeypatch.setattr(trl, "__version__", "9.9.0")
    monkeypatch.setattr(reuse, "_warned", False)
    with caplog.at_level(logging.WARNING, logger=reuse.__name__):
        assert not reuse.trl_reuse_verified()
        assert not reuse.trl_reuse_verified()
    warnings = [r for r in caplog.records if "not among the versions checked" in r.getMessage()]
    assert len(warnings) == 1 and "9.9.0" in warnings[0].getMessage()
