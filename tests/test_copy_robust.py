"""Copy-robust SAR (issue 14) against hand-computed values.

Notation in the comments: r_t = logp_qa_t - logp_a_t (the token's log-ratio); default SAR is
1 - exp(-mean r) (= (ppl_a - ppl_qa) / ppl_a).
"""

import math

import pytest
import torch

from sarl.rewards.copy_robust import cap_log_ratio, copied_token_mask, discount_copies
from sarl.rewards.self_aligned import SARConfig, self_aligned_reward

# A fake tokenizer in the style of the default one (digits are single tokens, a space before a number is
# its own token): "Tom has 17 apples and buys 8 more." as ids
SP, D1, D7, D8, D2, D5 = 1, 2, 3, 4, 5, 6
TOM, HAS, APPLES, AND, BUYS, MORE, DOT, PLUS, EQ, SO = 10, 11, 12, 13, 14, 15, 16, 20, 21, 22
QUESTION = [TOM, HAS, SP, D1, D7, APPLES, AND, BUYS, SP, D8, MORE, DOT]
CONTEXT = [90, 91, 92] + QUESTION + [93, 94]  # chat template + question + generation prompt
SUM = [D1, D7, SP, PLUS, SP, D8, SP, EQ, SP, D2, D5]  # "17 + 8 = 25"


def test_reusing_the_questions_numbers_is_not_a_copy():
    # "17 + 8 = 25": the longest run shared with the context is " 8" / "17" (2 tokens)
    copied = copied_token_mask([CONTEXT], [SUM], n=3, width=len(SUM))
    assert copied.tolist() == [[False] * len(SUM)]
    # " 17 apples" is a 4-token run of the question: a copy for n <= 4 only
    ans = [SO, SP, D1, D7, APPLES]
    assert copied_token_mask([CONTEXT], [ans], n=4, width=5).tolist() == [[False, True, True, True, True]]
    assert copied_token_mask([CONTEXT], [ans], n=5, width=5).tolist() == [[False] * 5]


def test_exact_partial_and_overlapping_copies_by_hand():
    ctx = [1, 2, 3, 4, 5, 6, 7, 8]
    answers = [
        [3, 4, 5, 6],           # exact copy of a span: every token
        [9, 2, 3, 4, 9, 5, 6],  # a 3-run (2 3 4) is copied, the 2-run (5 6) is not
        [1, 2, 3, 4, 1, 2, 3],  # two runs, the second re-starting the context
        [4, 3, 2],              # the context's tokens in another order: no run
        [],                     # empty answer
        [7, 8],                 # shorter than n
    ]
    copied = copied_token_mask([ctx] * len(answers), answers, n=3, width=7)
    T, F = True, False
    assert copied.tolist() == [
        [T, T, T, T, F, F, F],  # columns past the answer are False
        [F, T, T, T, F, F, F],
        [T, T, T, T, T, T, T],
        [F, F, F, F, F, F, F],
        [F] * 7,
        [F] * 7,
    ]
    assert copied.dtype == torch.bool and copied.shape == (6, 7)
    # n = 1: every token that occurs anywhere in the context
    assert copied_token_mask([ctx], [[9, 2, 9]], n=1, width=3).tolist() == [[F, T, F]]


def test_copied_token_mask_errors():
    with pytest.raises(ValueError, match="context_ids"):
        copied_token_mask(None, [[1]], n=2, width=1)
    with pytest.raises(ValueError, match="rows"):
        copied_token_mask([[1], [2]], [[1]], n=2, width=1)
    with pytest.raises(ValueError, match="columns"):
        copied_token_mask([[1, 2]], [[1, 2, 3]], n=2, width=2)
    with pytest.raises(ValueError, match="n must be"):
        copied_token_mask([[1]], [[1]], n=0, width=1)


# Rows for the reward tests (columns: answer tokens; row 3 is empty):
#   row 0: exact copy, r = [2.9, 2.9, 2.9]            copied [T, T, T]
#   row 1: "17 + 8"-style reuse, r = [1, 1, 1]        copied [F, F, F]
#   row 2: partial copy, r = [1, 2.9, 2.9, 2.9, 1]    copied [F, T, T, T, F]
CTX = [1, 2, 3, 4, 5, 6, 7, 8]
RESP = [[3, 4, 5], [2, 9, 3], [9, 3, 4, 5, 9], []]
LQ = torch.tensor([[-0.1, -0.1, -0.1, 0.0, 0.0],
                   [-1.0, -1.0, -1.0, 0.0, 0.0],
                   [-1.0, -0.1, -0.1, -0.1, -1.0],
                   [0.0, 0.0, 0.0, 0.0, 0.0]])
LA = torch.tensor([[-3.0, -3.0, -3.0, 0.0, 0.0],
                   [-2.0, -2.0, -2.0, 0.0, 0.0],
                   [-2.0, -3.0, -3.0, -3.0, -2.0],
                   [0.0, 0.0, 0.0, 0.0, 0.0]])
M = torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
IDS = {"context_ids": [CTX] * 4, "response_ids": RESP}


def _sar(cfg, **kw):
    return self_aligned_reward(LQ, LA, M, cfg, **{**IDS, **kw})


def test_zero_mode_by_hand():
    out = _sar(SARConfig(copy_ngram=3, copy_mode="zero"))
    # row 0: all r -> 0 -> 0 ; row 1: unchanged, 1 - e^-1 ; row 2: r = [1, 0, 0, 0, 1], mean 0.4 ; row 3: empty
    assert out["sar"].tolist() == pytest.approx([0.0, 1 - math.exp(-1), 1 - math.exp(-0.4), 0.0], abs=1e-7)
    assert out["copied"].tolist() == [3.0, 0.0, 3.0, 0.0]
    assert out["empty"].tolist() == [False, False, False, True]
    # default SAR pays for the copies: row 0 mean r 2.9, row 2 mean r (1 + 8.7 + 1) / 5 = 2.14
    default = _sar(SARConfig())["sar"].tolist()
    assert default == pytest.approx([1 - math.exp(-2.9), 1 - math.exp(-1), 1 - math.exp(-2.14), 0.0], rel=1e-6)


def test_mask_mode_by_hand():
    out = _sar(SARConfig(copy_ngram=3, copy_mode="mask"))
    # row 0: every token copied -> scored as empty -> 0 ; row 2: mean r over [1, 1] = 1
    assert out["sar"].tolist() == pytest.approx([0.0, 1 - math.exp(-1), 1 - math.exp(-1), 0.0], abs=1e-7)
    assert out["ppl_qa"][0].item() == 1.0 and out["ppl_a"][0].item() == 1.0
    # without comparison (-ppl_qa + 5) a fully copied answer must not get the best score (5 - 1 = 4)
    nc = _sar(SARConfig(copy_ngram=3, copy_mode="mask", use_comparison=False, use_denominator=False))
    assert nc["sar"][0].item() == 0.0
    assert nc["sar"][2].item() == pytest.approx(5 - math.exp(1.0))  # ppl_qa over the two kept tokens = e^1


def test_use_log_with_copies_by_hand():
    out = _sar(SARConfig(copy_ngram=3, copy_mode="zero", use_log=True))
    # row 2: NLL_qa after zeroing = (1 + 3 + 3 + 3 + 1) / 5 = 2.2 ; NLL_a = (2 + 3 + 3 + 3 + 2) / 5 = 2.6
    # -> (2.6 - 2.2) / 2.6 ; row 1: (2 - 1) / 2 = 0.5 ; row 0: (3 - 3) / 3 = 0
    assert out["sar"].tolist() == pytest.approx([0.0, 0.5, 0.4 / 2.6, 0.0], abs=1e-7)


def test_token_ratio_cap_by_hand():
    out = _sar(SARConfig(token_ratio_cap=1.0))
    # row 0: r 2.9 -> 1 each -> 1 - e^-1 ; row 2: r [1, 1, 1, 1, 1] -> 1 - e^-1
    assert out["sar"].tolist() == pytest.approx([1 - math.exp(-1)] * 3 + [0.0], abs=1e-7)
    # the cap also bounds losses: r = -5 -> -1 (logp_qa = -1 - 1 = -2)
    lq, la = torch.tensor([[-6.0]]), torch.tensor([[-1.0]])
    assert cap_log_ratio(lq, la, 1.0).tolist() == [[-2.0]]
    # it needs no token ids; cap 0.5: r -> -0.5 -> SAR = 1 - e^0.5 (above the -1 clip)
    assert self_aligned_reward(lq, la, torch.ones(1, 1), SARConfig(token_ratio_cap=0.5))["sar"].item() == \
        pytest.approx(1 - math.exp(0.5))


def test_default_config_ignores_ids_bit_for_bit():
    a = self_aligned_reward(LQ, LA, M, SARConfig())
    b = _sar(SARConfig())
    for k in ("ppl_qa", "ppl_a", "sar", "empty"):
        assert torch.equal(a[k], b[k])
    assert "copied" not in a


def test_missing_ids_are_a_clear_error():
    cfg = SARConfig(copy_ngram=3)
    with pytest.raises(ValueError, match="response_ids"):
        self_aligned_reward(LQ, LA, M, cfg)
    with pytest.raises(ValueError, match="context_ids"):
        self_aligned_reward(LQ, LA, M, cfg, response_ids=RESP)
    with pytest.raises(ValueError, match="rows"):
        self_aligned_reward(LQ, LA, M, cfg, context_ids=[CTX] * 4, response_ids=RESP[:2])


def test_inputs_are_not_modified():
    lq, la, m = LQ.clone(), LA.clone(), M.clone()
    copied = copied_token_mask([CTX] * 4, RESP, 3, 5)
    for mode in ("zero", "mask"):
        new_qa, _new_a, new_m = discount_copies(lq, la, m, copied, mode)
        assert new_qa is not None and new_m is not None
    cap_log_ratio(lq, la, 0.5)
    _sar(SARConfig(copy_ngram=3, token_ratio_cap=1.0))
    assert torch.equal(lq, LQ) and torch.equal(la, LA) and torch.equal(m, M)


def test_discount_copies_by_hand():
    lq, la = torch.tensor([[-1.0, -0.1, -2.0]]), torch.tensor([[-2.0, -3.0, -2.5]])
    m = torch.tensor([[1.0, 1.0, 0.0]])
    copied = torch.tensor([[False, True, True]])  # column 2 is padding: untouched
    qa, a, mm = discount_copies(lq, la, m, copied, "zero")
    assert qa.tolist() == [[-1.0, -3.0, -2.0]] and torch.equal(mm, m) and a is la
    qa, a, mm = discount_copies(lq, la, m, copied, "mask")
    assert mm.tolist() == [[1.0, 0.0, 0.0]] and qa is lq
    with pytest.raises(ValueError, match="logp_a"):
        discount_copies(lq, None, m, copied, "zero")
    with pytest.raises(ValueError, match="mode"):
        discount_copies(lq, la, m, copied, "drop")


def test_all_masked_rows_are_finite_and_zero():
    lq = torch.full((2, 3), -50.0)
    m = torch.zeros(2, 3)
    for cfg in (SARConfig.copy_robust(), SARConfig(copy_ngram=2, copy_mode="mask"), SARConfig(token_ratio_cap=2.0),
                SARConfig.copy_robust(use_log=True)):
        out = self_aligned_reward(lq, lq * 2, m, cfg, context_ids=[[1, 2]] * 2, response_ids=[[], []])
        assert out["sar"].tolist() == [0.0, 0.0] and out["empty"].tolist() == [True, True]
        assert torch.isfinite(out["ppl_qa"]).all() and torch.isfinite(out["ppl_a"]).all()


def test_config_validation():
    for bad in ({"copy_ngram": -1}, {"copy_ngram": True}, {"copy_ngram": 2.5}, {"copy_mode": "drop"},
                {"token_ratio_cap": -1.0}, {"token_ratio_cap": float("nan")}, {"token_ratio_cap": float("inf")}):
        with pytest.raises(ValueError):
            SARConfig(**bad)
    with pytest.raises(ValueError, match="use_comparison"):
        SARConfig(copy_ngram=8, copy_mode="zero", use_comparison=False, use_denominator=False)
    with pytest.raises(ValueError, match="use_comparison"):
        SARConfig(token_ratio_cap=1.0, use_comparison=False, use_denominator=False)
    SARConfig(copy_ngram=8, copy_mode="mask", use_comparison=False, use_denominator=False)  # fine
    rec = SARConfig.copy_robust()
    assert (rec.copy_ngram, rec.copy_mode, rec.use_log) == (10, "zero", False) and rec.needs_token_ids
    assert SARConfig.copy_robust(use_log=True).use_log
    assert not SARConfig().needs_token_ids


def test_real_tokenizer_gold_is_not_a_copy_restatement_is():
    """GSM8K problem 0 through the default model's tokenizer and chat template (no model run)."""
    from sarl.analyze import build_variants
    from sarl.data import load_gsm8k
    from sarl.models import load_tokenizer
    from sarl.prompts import encode, render_prompt

    tok = load_tokenizer()
    probs = load_gsm8k()[:2]
    v = build_variants(probs, seed=0)
    ctx = encode(tok, render_prompt(tok, probs[0]["question"]))
    n = SARConfig.copy_robust().copy_ngram
    for name, expect_max in (("gold", 0.0), ("wrong_final", 0.0)):
        ids = encode(tok, v[name][0])
        frac = copied_token_mask([ctx], [ids], n, len(ids)).float().mean().item()
        assert frac <= expect_max, (name, frac)
    ids = encode(tok, v["restated"][0])
    assert copied_token_mask([ctx], [ids], n, len(ids)).float().mean().item() > 0.7
    # why n must be large: at n = 4 the gold solution's " every day at the" (4 tokens, also in the
    # question) counts as a copy, while its reused numbers ("16 - 3 - 4", "$2") do not
    gold = encode(tok, v["gold"][0])
    c4 = copied_token_mask([ctx], [gold], 4, len(gold))[0].tolist()
    assert tok.decode([t for t, c in zip(gold, c4) if c]) == " every day at the"


def test_dense_copy_mask_by_hand():
    from sarl.rewards.copy_robust import dense_copy_mask

    short = torch.tensor([[1, 1, 0, 1, 0, 0, 0]], dtype=torch.bool)
    # w 3, min 0.5 -> at least 1.5 of the 3 centred columns: t0 (pad, 1, 1) = 2 ; t1 (1, 1, 0) = 2 ; t3 (0, 1, 0) = 1
    assert dense_copy_mask(short, 3, 0.5).tolist() == [[True, True, False, False, False, False, False]]
    # w 5, min 0.6 -> at least 3 of 5: t0 = 2 ; t1 (pad, 1, 1, 0, 1) = 3 ; t3 (1, 0, 1, 0, 0) = 2
    assert dense_copy_mask(short, 5, 0.6).tolist() == [[False, True, False, False, False, False, False]]
    with pytest.raises(ValueError, match="odd"):
        dense_copy_mask(short, 4, 0.5)
    with pytest.raises(ValueError, match="min_frac"):
        dense_copy_mask(short, 3, 0.0)


def test_dense_option_catches_a_paraphrase_not_sparse_reuse():
    ctx = list(range(1, 13))
    para = [1, 2, 3, 50, 5, 6, 7, 51, 9, 10, 11]    # the context with every 4th token swapped: 3-token runs
    sparse = [1, 2, 3, 50, 51, 52, 53, 54, 9, 10, 11]  # two isolated 3-token reuses
    cfg = SARConfig(copy_ngram=5, copy_dense_ngram=3, copy_dense_window=7, copy_dense_min=0.5)
    lq = torch.full((2, 11), -0.5)
    la = torch.full((2, 11), -2.0)  # r = 1.5 on every token
    out = self_aligned_reward(lq, la, torch.ones(2, 11), cfg, context_ids=[ctx, ctx], response_ids=[para, sparse])
    # para: short runs [1,1,1,0,1,1,1,0,1,1,1]; >= 4 of the 7 centred columns at t1, t2, t4, t5, t6, t8, t9
    # (t0 and t10 see 3) -> 7 copied, 4 kept with r = 1.5 -> mean r = 6 / 11
    # sparse: no window holds more than 3 short-run tokens -> nothing copied, mean r = 1.5
    assert out["copied"].tolist() == [7.0, 0.0]
    assert out["sar"].tolist() == pytest.approx([1 - math.exp(-6 / 11), 1 - math.exp(-1.5)], rel=1e-9)
    # copy_ngram alone (5) sees no copy in either
    plain = self_aligned_reward(lq, la, torch.ones(2, 11), SARConfig(copy_ngram=5), context_ids=[ctx, ctx],
                                response_ids=[para, sparse])
    assert plain["copied"].tolist() == [0.0, 0.0]
    for bad in ({"copy_dense_ngram": 3}, {"copy_ngram": 3, "copy_dense_ngram": 3},
                {"copy_ngram": 10, "copy_dense_ngram": 3, "copy_dense_window": 4},
                {"copy_ngram": 10, "copy_dense_ngram": 3, "copy_dense_min": 1.5}):
        with pytest.raises(ValueError):
            SARConfig(**bad)


# ------------------------------------------------------------------ wiring: CLI, training, TRL plug-in
def test_score_cli_copy_robust_flag(tmp_path):
    """``sarl score --copy-robust``: copied tokens are counted per row and a parroted answer loses what
    its copied tokens earned; an answer reusing the question's numbers has no copied token."""
    import json

    from sarl.cli import main

    q = "Tom has 17 apples and buys 8 more apples at the market on Sunday. How many apples does he have now?"
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"question": q, "answer": "17 + 8 = 25. The answer is 25."},
        {"question": q, "answer": f"The question is: {q} The answer is 26."},
    ]) + "\n")
    rows = {}
    for name, flags in (("plain", []), ("robust", ["--copy-robust"])):
        out = tmp_path / f"{name}.jsonl"
        assert main(["score", str(src), "-o", str(out), "--model", "tiny-random", *flags]) == 0
        rows[name] = [json.loads(x) for x in out.read_text().splitlines()]
    assert "copied_tokens" not in rows["plain"][0]
    assert rows["robust"][0]["copied_tokens"] == 0 and rows["robust"][1]["copied_tokens"] >= 20
    assert rows["robust"][0]["sar"] == rows["plain"][0]["sar"]  # nothing copied: the same SAR
    assert rows["robust"][1]["sar"] != rows["plain"][1]["sar"]


def test_copy_robust_sar_in_training(tmp_path):
    """``rewards.options.sar`` reaches the copy-robust options; the trainer supplies the token ids."""
    from sarl.config import load_config
    from sarl.train import Trainer

    cfg = load_config(None, [
        "model.name=tiny-random", "data.train=chain_sum", "data.train_size=16", "data.max_response_length=8",
        "rollout.n=2", "trainer.prompts_per_step=2", "trainer.total_steps=1", "trainer.tensorboard=false",
        f"trainer.out_dir={tmp_path}", "rewards.weights={correctness: 1.0, sar: 0.2}",
        "rewards.options={sar: {copy_ngram: 3, copy_mode: zero}}"])
    tr = Trainer(cfg)
    assert "token_ids" in tr.parts.needs
    last = tr.run()
    assert math.isfinite(last["reward/sar"])


def test_copy_robust_option_errors_name_the_key():
    from sarl.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="copy_mode.*did you mean 'zero'"):
        load_config(None, ["rewards.weights={sar: 1.0}", "rewards.options={sar: {copy_mode: zer}}"])


def test_non_numeric_option_values_are_clear_errors():
    from sarl.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="copy_ngram: expected a number, got 'x'"):
        SARConfig(copy_ngram="x")
    with pytest.raises(ConfigError, match="token_ratio_cap: expected a number, got 'big'"):
        load_config(None, ["rewards.weights={sar: 1.0}", "rewards.options={sar: {token_ratio_cap: big}}"])
