"""The one rollout-backend factory (sarl.rollout.make_backend) of training and evaluation: one name set
with aliases, the copies it makes, and the old import locations kept as bridges."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch

from sarl.errors import UnknownNameError
from sarl.rollout import BACKENDS, CopyBackend, HFBackend, backend_help, make_backend, resolve_backend


@pytest.fixture(scope="module")
def lm():
    from sarl.models import load_model

    return load_model("tiny-random", dtype="float32", device="cpu")


def test_one_name_set_with_aliases():
    assert BACKENDS[:3] == ("hf", "vllm", "auto") and "transformers" in BACKENDS
    assert resolve_backend("transformers", "cpu") == resolve_backend("hf", "cpu") == "hf"
    assert resolve_backend("auto", "cpu") == "hf"  # vLLM only on a GPU
    assert resolve_backend("vllm", "cpu") == "vllm"
    with pytest.raises(UnknownNameError, match="did you mean 'vllm'"):
        resolve_backend("vlm", "cpu")
    assert "hf (= transformers)" in backend_help()


def test_hf_backends_built_as_training_and_evaluation_ask(lm):
    # evaluation: a loaded model, no precision: the model itself
    for name in ("auto", "hf", "transformers"):
        be = make_backend(lm, name)
        assert type(be) is HFBackend and be.model is lm.model and be.name == "hf"
    # training: the policy and its tokenizer, with the recipe's precision and copy settings
    kw = {"tokenizer": lm.tokenizer, "device": "cpu"}
    assert make_backend(lm.model, "hf", precision="bf16-mixed", bf16_copy=False, **kw).model is lm.model
    assert make_backend(lm.model, "hf", precision="fp32", bf16_copy=True, **kw).model is lm.model
    bf16 = make_backend(lm.model, "hf", precision="bf16-mixed", bf16_copy=True, **kw)
    assert isinstance(bf16, CopyBackend) and next(bf16.model.parameters()).dtype == torch.bfloat16
    full = make_backend(lm.model, "hf", precision="fp32", sharded=True, **kw)
    assert isinstance(full, CopyBackend) and full.model is not lm.model
    assert next(full.model.parameters()).dtype == torch.float32
    assert next(lm.model.parameters()).dtype == torch.float32  # the policy itself is left as it was


def test_training_wrapper_reads_the_recipe(lm, tmp_path):
    from sarl.config import load_config
    from sarl.train.rollout import CopyBackend as OldCopyBackend
    from sarl.train.rollout import make_rollout_backend

    assert OldCopyBackend is CopyBackend  # the old import location still works
    cfg = load_config(None, ["model.name=tiny-random", f"trainer.out_dir={tmp_path}"])
    dist = SimpleNamespace(main=True, world=1, barrier=lambda: None)
    be = make_rollout_backend(cfg, lm.model, lm.tokenizer, out=tmp_path, precision="bf16-mixed", device="cpu",
                              dist=dist)
    assert isinstance(be, CopyBackend) and next(be.model.parameters()).dtype == torch.bfloat16
    be = make_rollout_backend(cfg, lm.model, lm.tokenizer, out=tmp_path, precision="fp32", device="cpu", dist=dist)
    assert type(be) is HFBackend and be.model is lm.model


def test_prompt_names_have_one_home():
    import sarl.data

    # sarl.prompts is the one home: the data layer no longer carries a second copy or a bridge
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sarl.data.prompts")
    for name in ("render_problem_prompt", "get_instruction", "INSTRUCTIONS"):
        assert not hasattr(sarl.data, name), name

