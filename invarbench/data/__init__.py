"""Evaluation data sets behind one registry (an I/O edge).

Every loader returns images as uint8 NCHW and int64 labels, in the split's published order;
:func:`load_eval_data` converts them to float images in [0, 1].
"""

from invarbench.data.registry import DATASETS, DatasetSpec, EvalData, class_name, load_eval_data, read_custom_npz

# Importing the modules registers their data sets.
from invarbench.data import mnist5k, vision  # noqa: F401  isort: skip

__all__ = ["DATASETS", "DatasetSpec", "EvalData", "class_name", "load_eval_data", "read_custom_npz"]
