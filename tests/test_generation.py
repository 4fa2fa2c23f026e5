"""The transformers generation backend on the real default model."""

import pytest
import torch

from sarl.prompts import encode, render_prompt
from sarl.rollout import GenerationConfig, HFBackend
from sarl.rollout.hf import _filter_logits

QUESTIONS = ["What is 2+3?", "Name a prime number larger than 10.", "What is the capital of France?",
             "Tom has 17 apples and buys 8 more. How many apples?"]


@pytest.fixture(scope="module")
def backend(lm):
    return HFBackend(lm.model, lm.tokenizer)


def _prompts(lm):
    return [encode(lm.tokenizer, render_prompt(lm.tokenizer, q)) for q in QUESTIONS]


@pytest.mark.slow
def test_greedy_matches_transformers_generate(lm, backend):
    prompts = _prompts(lm)
    ours = backend.generate(prompts, GenerationConfig(max_new_tokens=24, batch_size=4))
    tok = lm.tokenizer
    for p, samples in zip(prompts, ours):
        ref = lm.model.generate(torch.tensor([p]), max_new_tokens=24, do_sample=False,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
        assert samples[0].token_ids == ref
        s = samples[0]
        assert s.finish_reason == ("stop" if ref[-1] == tok.eos_token_id else "length")
        assert s.text == tok.decode(ref, skip_special_tokens=True)


@pytest.mark.slow
def test_sampling_is_seeded_and_independent_of_batching(lm, backend):
    prompts = _prompts(lm)
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, n=2, seed=3, batch_size=8)
    a = backend.generate(prompts, cfg)
    # reversed order, other batch size, same keys: every sample must be identical
    b = backend.generate(prompts[::-1], GenerationConfig(max_new_tokens=12, temperature=1.0, n=2, seed=3,
                                                         batch_size=2), keys=[3, 2, 1, 0])
    for i in range(4):
        assert [s.token_ids for s in a[i]] == [s.token_ids for s in b[3 - i]]
    assert len(a[0]) == 2
    c = backend.generate(prompts, GenerationConfig(max_new_tokens=12, temperature=1.0, n=2, seed=4, batch_size=8))
    assert any(x.token_ids != y.token_ids for i in range(4) for x, y in zip(a[i], c[i]))


def test_top_k_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(_filter_logits(logits, top_k=2, top_p=1.0)).tolist() == [[False, False, True, True]]
    # nucleus 0.8: 0.5 + 0.3 reaches 0.8, so the rest go
    assert torch.isinf(_filter_logits(logits, top_k=0, top_p=0.8)).tolist() == [[False, False, True, True]]
    assert torch.isinf(_filter_logits(logits, top_k=0, top_p=0.81)).tolist() == [[False, False, False, True]]


def test_config_errors():
    with pytest.raises(ValueError, match="identical samples"):
        GenerationConfig(n=4)
    with pytest.raises(ValueError, match="top_p"):
        GenerationConfig(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)


def test_batched_sampling_draws_from_the_softmax_with_noise_keyed_by_seed_and_step():
    """The batched sampler: frequencies follow softmax(logits), draws at two steps are independent, and a
    row's draw depends only on its seed and the step (not on the rest of the batch)."""
    from sarl.rollout.hf import categorical_sample as sample

    n = 20_000
    probs = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    logits = probs.log().expand(n, 5)
    seeds = torch.arange(n)  # consecutive seeds: the hash must decorrelate them
    d3, d4 = sample(logits, seeds, 3), sample(logits, seeds, 4)
    for draws in (d3, d4):
        freq = torch.bincount(draws, minlength=5).float() / n
        assert ((freq - probs).abs() < 4 * (probs * (1 - probs) / n).sqrt()).all(), freq
    joint = ((d3 == 0) & (d4 == 0)).float().mean()  # independent steps: P = 0.5 * 0.5
    assert abs(float(joint) - 0.25) < 4 * (0.25 * 0.75 / n) ** 0.5
    assert torch.equal(sample(logits[:100].flip(0), seeds[:100].flip(0), 3), d3[:100].flip(0))
    masked = logits.clone()
    masked[:, 0] = float("-inf")
    assert (sample(masked, seeds, 3) != 0).all()
