"""The data set registry and the evaluation data container."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from invarbench.errors import ValidationError
from invarbench.registry import Registry

# loader(split, data_dir) -> (images uint8 [N, C, H, W], labels int64 [N])
Loader = Callable[[str, Path | None], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    description: str
    loader: Loader


@dataclass(frozen=True)
class EvalData:
    """Images in [0, 1] (float32, NCHW) and labels, plus where they came from."""

    dataset: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    total: int  # size of the full split before --limit

    def __len__(self) -> int:
        return int(self.y.shape[0])


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec


def load_eval_data(
    dataset: str, *, split: str = "test", data_dir: Path | None = None, limit: int | None = None
) -> EvalData:
    """Load the first ``limit`` examples of ``split`` of ``dataset`` in its published order."""
    spec = DATASETS.get(dataset)
    images, labels = spec.loader(split, data_dir)
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != spec.input_shape:
        raise ValidationError(
            f"data set '{dataset}' gave images of shape {images.shape} and dtype {images.dtype}; "
            f"expected uint8 [N, {', '.join(map(str, spec.input_shape))}]"
        )
    total = int(labels.shape[0])
    if limit is not None:
        if limit < 1:
            raise ValidationError(f"--limit must be at least 1, got {limit}")
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(labels)).long()
    return EvalData(dataset=dataset, split=split, x=x, y=y, total=total)
