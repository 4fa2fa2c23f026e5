"""One pair encoder (:func:`sarl.scoring.encode_pairs`): ``sarl score`` (SARScorer) and the TRL adapter
(SarlReward) score the same token ids for the same (question, answer) pairs, empty and over-long
answers included."""

import pytest

from sarl.models import LoadedModel, tiny_random_model
from sarl.prompts import DEFAULT_SYSTEM_PROMPT, encode, render_null_prompt, render_prompt
from sarl.scoring import SARScorer, context_window, encode_pairs

QUESTIONS = ["What is 2+3?", "Tom has 17 apples and buys 8 more. How many?", "What is 10 times 3?", "Name a prime."]
ANSWERS = ["2+3=5. The answer is 5.", "", "   ",
           "Two is prime, because its only divisors are one and itself; so are 3, 5 and 7. The answer is 2."]


@pytest.fixture(scope="module")
def tiny():
    model, tok = tiny_random_model()
    return LoadedModel(model=model, tokenizer=tok, name="tiny", device="cpu")


def test_encode_pairs_rules(tiny):
    tok = tiny.tokenizer
    null = encode(tok, render_null_prompt(tok))
    ctx, ans, status = encode_pairs(tok, QUESTIONS, ANSWERS, null_ids=null, max_answer_tokens=16)
    assert status == ["ok", "empty", "empty", "truncated"]
    assert ctx[0] == encode(tok, render_prompt(tok, QUESTIONS[0]))
    assert ans[0] == encode(tok, ANSWERS[0]) and ans[1] == ans[2] == [] and ans[3] == encode(tok, ANSWERS[3])[:16]
    # a context given as token ids is taken as it is; sampled answer ids are scored as they are (even
    # whitespace, which re-encoded text would drop)
    space = encode(tok, "   ")
    again = encode_pairs(tok, ctx, [ans[0], [], space, encode(tok, ANSWERS[3])], null_contexts=[null] * 4,
                         max_answer_tokens=16)
    assert again == (ctx, [ans[0], [], space, ans[3]], ["ok", "empty", "ok", "truncated"])
    # the context window counts the longer of the two prompts
    window = max(len(ctx[0]), len(null)) + 3
    assert encode_pairs(tok, QUESTIONS[:1], ANSWERS[:1], null_ids=null, max_positions=window)[1:] == (
        [ans[0][:3]], ["truncated"])
    with pytest.raises(ValueError, match="2 questions but 1 answers"):
        encode_pairs(tok, QUESTIONS[:2], ANSWERS[:1], null_ids=null)
    with pytest.raises(ValueError, match="null_ids"):
        encode_pairs(tok, QUESTIONS, ANSWERS)


def test_scorer_and_trl_reward_encode_the_same_token_ids(tiny):
    pytest.importorskip("trl")
    from sarl.integrations.trl import SarlReward

    tok = tiny.tokenizer
    ctx, ans, status = SARScorer(tiny, max_answer_tokens=16).encode_pairs(QUESTIONS, ANSWERS)
    assert status == ["ok", "empty", "empty", "truncated"]
    prompts = [[{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": q}]
               for q in QUESTIONS]
    window = context_window(tiny.model)
    got = SarlReward("sar", max_answer_tokens=16).encode_batch(tok, prompts, ANSWERS, max_positions=window)
    assert (got["contexts"], got["answers"], got["status"]) == (ctx, ans, status)
    assert got["nulls"] == [encode(tok, render_null_prompt(tok, DEFAULT_SYSTEM_PROMPT))] * len(QUESTIONS)
    assert got["questions"] == QUESTIONS and got["systems"] == [DEFAULT_SYSTEM_PROMPT] * len(QUESTIONS)
    # answer_tokens="sampled": the same ids, given as the sampled ones, are scored the same way
    sampled = [encode(tok, a) if a.strip() else [] for a in ANSWERS]
    got = SarlReward("sar", answer_tokens="sampled", max_answer_tokens=16).encode_batch(
        tok, prompts, ANSWERS, sampled, max_positions=window)
    assert (got["contexts"], got["answers"], got["status"]) == (ctx, ans, status)
