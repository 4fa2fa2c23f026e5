"""`sarl sft`: masking, the response-only loss, learning, exact resume, clear errors, the CLI."""

import json
import os

import pytest
import torch

from sarl.io import DataError
from sarl.models import load_tokenizer, new_llama
from sarl.sft import SFTConfig, collate, encode_examples, response_loss, run_sft

TINY = "layers=1,hidden=32,heads=2,intermediate=64"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(None)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_collate_masks_prompt_and_padding(tok):
    cfg = SFTConfig(max_length=200)
    data = encode_examples(tok, [{"question": "What is 2 + 3?", "response": "2 + 3 = 5. The answer is 5."},
                                 {"question": "Is True or False true?", "response": "Yes."}], cfg)
    ids, mask, pos, labels, keep = collate(data, tok.pad_token_id)
    for r, (seq, n_prompt) in enumerate(data):
        off = ids.shape[1] - len(seq)
        assert ids[r, off:].tolist() == seq and mask[r, :off].sum() == 0
        assert (labels[r, :off + n_prompt] == -100).all()
        assert labels[r, off + n_prompt:].tolist() == seq[n_prompt:]
        assert seq[-1] == tok.eos_token_id  # the response ends with EOS
        assert pos[r, off:].tolist() == list(range(len(seq)))
    assert keep == max(len(s) - n for s, n in data) + 1


def test_response_loss_equals_full_logits_cross_entropy(tok):
    """The left-padded, last-positions-only loss equals cross-entropy over full logits of each example."""
    model = new_llama(tok, layers=2, hidden=32, heads=2, seed=0).eval()
    cfg = SFTConfig(max_length=200)
    data = encode_examples(tok, [{"question": "q one", "response": "a short answer"},
                                 {"question": "a much longer question here", "response": "x " * 20}], cfg)
    loss, n = response_loss(model, *collate(data, tok.pad_token_id))
    total, count = 0.0, 0
    for seq, n_prompt in data:
        logits = model(input_ids=torch.tensor([seq])).logits[0, :-1]
        lp = torch.log_softmax(logits.double(), -1)
        tgt = torch.tensor(seq[1:])
        nll = -lp[torch.arange(len(tgt)), tgt][n_prompt - 1:]
        total += nll.sum().item()
        count += len(nll)
    assert n == count
    assert loss.item() == pytest.approx(total / count, abs=1e-4)


def test_sft_learns_and_resumes_exactly(tmp_path):
    """Overfitting 16 examples lowers the loss; a run interrupted after its step-3 checkpoint and
    resumed ends with the same weights as an uninterrupted run."""
    rows = [{"question": f"What is {i} + 1?", "response": f"{i} + 1 = {i + 1}. The answer is {i + 1}."}
            for i in range(16)]
    data = _write(tmp_path / "d.jsonl", rows)
    base = {"data": str(data), "new_model": TINY, "epochs": 10, "batch_size": 8, "lr": 1e-2, "warmup_steps": 2,
            "save_every": 3}

    full = run_sft(SFTConfig(**base, out_dir=str(tmp_path / "full")))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == full["steps"] == 20
    assert losses[-1] < 0.6 * losses[0]
    # the run folder: config.yaml is the settings as YAML (checkpoints too), run.yaml the run's facts
    from dataclasses import asdict

    import yaml

    settings = asdict(SFTConfig(**base, out_dir=str(tmp_path / "full")))
    assert (tmp_path / "full" / "config.yaml").read_text() == yaml.safe_dump(settings, sort_keys=False)
    assert yaml.safe_load((tmp_path / "full" / "run.yaml").read_text()) == {"engine": "sft", "precision": full["precision"]}
    ckpt_config = tmp_path / "full" / "checkpoints" / "step_18" / "config.yaml"
    assert yaml.safe_load(ckpt_config.read_text()) == settings and not ckpt_config.read_text().startswith("{")

    class Stop(Exception):
        pass

    def stop_at_5(m):
        if m["step"] == 5:
            raise Stop

    cut = SFTConfig(**base, out_dir=str(tmp_path / "cut"))
    with pytest.raises(Stop):
        run_sft(cut, on_step=stop_at_5)
    assert (tmp_path / "cut" / "checkpoints" / "step_3").is_dir()
    with pytest.raises(FileExistsError, match="--resume"):
        run_sft(cut)
    from sarl.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="lr: 0.01 before, 0.02 now"):  # never resumed with other settings
        run_sft(SFTConfig(**{**base, "lr": 2e-2}, out_dir=str(tmp_path / "cut")), resume=True)
    run_sft(cut, resume=True)
    rows_cut = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_cut] == list(range(1, 21))  # steps 4-5 were redone, not duplicated
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)

    # a damaged newest checkpoint is set aside and the run resumes from the intact one before it
    def stop_at_8(m):
        if m["step"] == 8:
            raise Stop

    two = SFTConfig(**base, keep_last=2, out_dir=str(tmp_path / "two"))
    with pytest.raises(Stop):
        run_sft(two, on_step=stop_at_8)
    root = tmp_path / "two" / "checkpoints"
    policy = root / "step_6" / "policy" / "model.safetensors"  # garbage of the same size: only the sha256 tells
    policy.write_bytes(os.urandom(policy.stat().st_size))
    said: list[str] = []
    run_sft(two, resume=True, say=said.append)
    assert len(said) == 1 and "step_6 is damaged (policy/model.safetensors: " in said[0]
    assert said[0].endswith("moved to step_6.damaged, resuming from step_3")
    assert (root / "step_6.damaged").is_dir()
    c = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], c[k], rtol=0, atol=1e-6)
    from sarl.train.checkpoint import CheckpointError

    for ckpt in root.glob("step_*[0-9]"):
        (ckpt / "config.yaml").write_text("damaged")
    with pytest.raises(CheckpointError, match=r"--resume: no intact checkpoint under .*checkpoints; step_18: "):
        run_sft(two, resume=True)


def test_sft_step_is_the_plain_clip_adamw_and_schedule_step(tok):
    """An SFT step (through sarl.train.update.optimizer_step) changes nothing in the numerics: it equals
    zero_grad, backward, clip_grad_norm_, AdamW step, schedule step, bit for bit."""
    import copy

    from sarl.sft import _sft_step
    from sarl.train.update import lr_lambda

    cfg = SFTConfig(max_length=200)
    data = encode_examples(tok, [{"question": f"q {i}", "response": f"answer {i} " * (i + 1)} for i in range(4)], cfg)
    model = new_llama(tok, layers=1, hidden=32, heads=2, intermediate=64, seed=0).train()
    ref = copy.deepcopy(model)

    def optim(m):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.01)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(2, 6, "cosine"))

    (opt, sched), (ropt, rsched) = optim(model), optim(ref)
    for step in range(1, 4):
        out = _sft_step(model, opt, sched, data, tok.pad_token_id, "fp32", 0.5, step)
        loss, _ = response_loss(ref, *collate(data, tok.pad_token_id))
        ropt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        ropt.step()
        rsched.step()
        assert out["loss"] == loss.item() and out["grad_norm"] == float(norm)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))


def test_micro_batches_give_the_whole_batch_update_with_less_padding(tok):
    """micro_batch_size: the batch sorted by length and cut; the loss, the gradient norm and the updated
    weights are the whole batch's (up to float summation order), and the micro-batches pad less."""
    import copy

    from sarl.sft import _sft_step, micro_batches

    cfg = SFTConfig(max_length=200)
    data = encode_examples(tok, [{"question": f"q {i}", "response": f"answer {i} " * (1 + 3 * (i % 4))}
                                 for i in range(8)], cfg)
    parts = micro_batches(data, 3)
    assert [len(p) for p in parts] == [3, 3, 2] and sorted(data) == sorted(ex for p in parts for ex in p)
    lengths = [len(ids) for p in parts for ids, _ in p]
    assert lengths == sorted(lengths)
    assert sum(max(len(i) for i, _ in p) * len(p) for p in parts) < max(lengths) * len(data)
    assert micro_batches(data, None) == [data] and micro_batches(data, 8) == [data]
    whole = new_llama(tok, layers=1, hidden=32, heads=2, intermediate=64, seed=0).train()
    micro = copy.deepcopy(whole)
    outs = []
    for m, size in ((whole, None), (micro, 3)):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        outs.append([_sft_step(m, opt, sched, data, tok.pad_token_id, "fp32", 1e9, s, size) for s in (1, 2)])
    for a, b in zip(*outs):
        assert a["response_tokens"] == b["response_tokens"] and a["tokens"] == b["tokens"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    for a, b in zip(whole.parameters(), micro.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(whole.parameters(), micro.parameters()))  # computed apart


def test_bad_data_names_row_and_key(tmp_path):
    data = _write(tmp_path / "d.jsonl", [{"question": "q", "response": "r"}, {"question": "q2"}])
    with pytest.raises(DataError, match=r"d.jsonl: row 2: missing key 'response'"):
        run_sft(SFTConfig(data=str(data), new_model=TINY, out_dir=str(tmp_path / "o")))
    data = _write(tmp_path / "e.jsonl", [{"q": "q", "r": "word " * 400}])
    with pytest.raises(DataError, match=r"example 1 has \d+ tokens, more than max_length=384"):
        run_sft(SFTConfig(data=str(data), question_key="q", response_key="r", new_model=TINY,
                          out_dir=str(tmp_path / "o2")))
    assert not (tmp_path / "o2" / "metrics.jsonl").exists()


def test_cli_sft_on_synthetic_corpus_with_new_tokenizer(tmp_path, capsys):
    from sarl.cli import main
    from sarl.models import load_model

    out = tmp_path / "sft"
    assert main(["sft", "-o", str(out), "--new-model", TINY, "--new-tokenizer", "400",
                 "--synthetic", "synth_arith=24,synth_logic=8",
                 "--batch-size", "16", "--save-every", "0"]) == 0
    assert "final loss" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["examples"] == 32
    lm = load_model(str(out / "model"))
    assert lm.model.config.num_hidden_layers == 1 and len(lm.tokenizer) == lm.model.config.vocab_size <= 400
    assert main(["sft", "-o", str(out), "--new-model", TINY]) == 2  # exists, no --resume
    assert main(["sft", "-o", str(tmp_path / "x"), "--new-model", "layers=two"]) == 2


def test_small_tokenizer_round_trips_and_renders_like_the_default(tmp_path, tok):
    from transformers import AutoTokenizer

    from sarl.prompts import render_prompt
    from sarl.tokenizer import train_tokenizer

    corpus = [f"Tom has {i} apples. {i} + 2 = {i + 2}. The answer is \\boxed{{{i + 2}}}." for i in range(300)]
    small = train_tokenizer(corpus, 300, template=tok)
    assert 259 < len(small) <= 300  # at most vocab_size: a small corpus may offer fewer merges
    for s in corpus[:5] + ["Unseen: Zürich ✓ 12.5%", ""]:
        assert small.decode(small(s, add_special_tokens=False)["input_ids"]) == s
    pieces = [small.decode([i]) for i in small("x 1234 y", add_special_tokens=False)["input_ids"]]
    assert "1" in pieces and "2" in pieces and "4" in pieces and not any(p.strip().isdigit() and len(p.strip()) > 1
                                                                     for p in pieces)
    assert render_prompt(small, "What is 2 + 2?") == render_prompt(tok, "What is 2 + 2?")
    assert small.eos_token == tok.eos_token and small.pad_token_id is not None
    small.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = render_prompt(small, "Tom has 5 apples.") + "5 + 2 = 7."
    assert again(text, add_special_tokens=False)["input_ids"] == small(text, add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="vocab_size must be"):
        train_tokenizer(corpus, 100, template=tok)


def test_default_synthetic_corpus_loads_and_counts_round_trip():
    """`sarl sft` with no data argument must work: the default corpus fits the synthetic splits."""
    from sarl.sft import DEFAULT_SYNTHETIC_TASKS, format_task_counts, load_examples, parse_task_counts

    examples = load_examples(SFTConfig())
    assert len(examples) == sum(DEFAULT_SYNTHETIC_TASKS.values())
    assert parse_task_counts(format_task_counts(DEFAULT_SYNTHETIC_TASKS)) == DEFAULT_SYNTHETIC_TASKS
    with pytest.raises(ValueError, match="expected task=count"):
        parse_task_counts("synth_arith=many")
