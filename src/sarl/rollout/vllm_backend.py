"""vLLM generation behind the same interface, used when vLLM is installed on a GPU machine.

Not exercised by the CPU test suite (vLLM needs a GPU); ``make_backend`` only picks it when it imports
and CUDA is available, or when asked for by name.
"""

from __future__ import annotations

from sarl.rollout.base import Backend, GenerationConfig, Sample
from sarl.rollout.hf import sample_seed


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model_path: str, tokenizer, dtype: str = "auto", gpu_memory_utilization: float = 0.8):
        from vllm import LLM

        self.llm = LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                       trust_remote_code=False)
        self.tokenizer = tokenizer

    def generate(self, prompt_ids, cfg: GenerationConfig, keys=None, progress=None):
        from vllm import SamplingParams, TokensPrompt

        keys = list(range(len(prompt_ids))) if keys is None else list(keys)
        results = []
        params = [SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                 top_k=cfg.top_k if cfg.top_k > 0 else -1, max_tokens=cfg.max_new_tokens,
                                 seed=None if cfg.greedy else sample_seed(cfg.seed, k, 0)) for k in keys]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids], params, use_tqdm=False)
        tokens = 0
        for o in outs:
            samples = [Sample(token_ids=list(c.token_ids), text=c.text,
                              finish_reason="length" if c.finish_reason == "length" else "stop") for c in o.outputs]
            tokens += sum(s.num_tokens for s in samples)
            results.append(samples)
        if progress:
            progress(len(prompt_ids), tokens)
        return results
