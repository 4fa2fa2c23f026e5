"""The log-prob helper on the real default model: padding and batching never change a result."""

import pytest
import torch

from sarl.logprobs import answer_logprobs, plan_batches
from sarl.prompts import encode, render_null_prompt, render_prompt

pytestmark = pytest.mark.slow

QUESTIONS = ["What is 2+3?", "Tom has 17 apples and buys 8 more. How many apples does he have?",
             "A train travels 60 km in 1.5 hours. What is its average speed?", "Is 7 prime?"]
ANSWERS = ["2+3=5. The answer is 5.", "17+8=25, so Tom has 25 apples. The answer is 25.",
           "Speed is distance over time: 60 / 1.5 = 40 km per hour. The answer is 40.", "Yes."]


def _encode(lm):
    tok = lm.tokenizer
    ctx = [encode(tok, render_prompt(tok, q)) for q in QUESTIONS]
    ans = [encode(tok, a) for a in ANSWERS]
    return ctx, ans


def test_batched_equals_one_by_one(lm):
    ctx, ans = _encode(lm)
    pad = lm.tokenizer.pad_token_id
    batched = answer_logprobs(lm.model, ctx, ans, pad_token_id=pad, stats=("entropy", "self_certainty"))
    assert len(plan_batches([len(c) + len(a) for c, a in zip(ctx, ans)], [len(a) for a in ans], 2048, 512)) == 1
    for i in range(len(ans)):
        one = answer_logprobs(lm.model, [ctx[i]], [ans[i]], pad_token_id=pad, stats=("entropy", "self_certainty"))
        n = len(ans[i])
        assert batched.mask[i].sum().item() == n
        assert torch.allclose(batched.logp[i, :n], one.logp[0, :n], atol=1e-4)
        for k in ("entropy", "self_certainty"):
            assert torch.allclose(batched.stats[k][i, :n], one.stats[k][0, :n], atol=1e-4)
        assert (batched.logp[i, n:] == 0).all()


def test_matches_a_plain_full_forward(lm):
    """Against the obvious implementation: one unpadded sequence, full logits, log_softmax, gather."""
    ctx, ans = _encode(lm)
    got = answer_logprobs(lm.model, ctx, ans, pad_token_id=lm.tokenizer.pad_token_id)
    for i in range(len(ans)):
        ids = torch.tensor([ctx[i] + ans[i]])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(ids).logits[0].float(), -1)
        want = logp[len(ctx[i]) - 1 : -1].gather(-1, torch.tensor(ans[i]).unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(got.logp[i, : len(ans[i])], want, atol=1e-4)


def test_tiny_budget_splits_batches_without_changing_results(lm):
    ctx, ans = _encode(lm)
    pad = lm.tokenizer.pad_token_id
    big = answer_logprobs(lm.model, ctx, ans, pad_token_id=pad)
    small = answer_logprobs(lm.model, ctx, ans, pad_token_id=pad, max_batch_tokens=64, max_logit_tokens=16)
    assert torch.allclose(big.logp, small.logp, atol=1e-4)


def test_entropy_and_self_certainty_definitions(lm):
    ctx, ans = _encode(lm)
    r = answer_logprobs(lm.model, ctx[:1], ans[:1], pad_token_id=lm.tokenizer.pad_token_id,
                        stats=("entropy", "self_certainty"))
    ids = torch.tensor([ctx[0] + ans[0]])
    with torch.no_grad():
        p = torch.log_softmax(lm.model(ids).logits[0, len(ctx[0]) - 1 : -1].float(), -1)
    V = p.shape[-1]
    ent = -(p.exp() * p).sum(-1)
    kl_u = (1 / V * (torch.log(torch.tensor(1 / V)) - p)).sum(-1)
    assert torch.allclose(r.stats["entropy"][0], ent, atol=1e-4)
    assert torch.allclose(r.stats["self_certainty"][0], kl_u, atol=1e-3)


def test_temperature_divides_logits(lm):
    ctx, ans = _encode(lm)
    pad = lm.tokenizer.pad_token_id
    t = answer_logprobs(lm.model, ctx[:1], ans[:1], pad_token_id=pad, temperature=0.7)
    ids = torch.tensor([ctx[0] + ans[0]])
    with torch.no_grad():
        p = torch.log_softmax(lm.model(ids).logits[0, len(ctx[0]) - 1 : -1].float() / 0.7, -1)
    want = p.gather(-1, torch.tensor(ans[0]).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(t.logp[0], want, atol=1e-4)


def test_empty_answers_and_bad_input(lm):
    tok = lm.tokenizer
    null = encode(tok, render_null_prompt(tok))
    r = answer_logprobs(lm.model, [null, null], [[], encode(tok, "Hi")], pad_token_id=tok.pad_token_id)
    assert r.mask[0].sum() == 0 and r.mask[1].sum() > 0
    with pytest.raises(ValueError, match="context 0 is empty"):
        answer_logprobs(lm.model, [[]], [[1]])
    with pytest.raises(ValueError, match="unknown stats"):
        answer_logprobs(lm.model, [null], [[1]], stats=("perplexity",))


def test_grad_mode_keeps_the_graph(lm):
    ctx, ans = _encode(lm)
    r = answer_logprobs(lm.model, ctx[:2], ans[:2], pad_token_id=lm.tokenizer.pad_token_id, grad=True)
    assert r.logp.requires_grad
    (r.logp * r.mask).sum().backward()
    g = lm.model.get_input_embeddings().weight.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
    lm.model.zero_grad(set_to_none=True)
