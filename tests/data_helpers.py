"""Helpers for the data, suite and measurement tests: files in the data sets' native formats,
tiny models, and the location of the shared real test images (absent in a fresh clone)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

SHARED_EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external"
REAL_MNIST = SHARED_EXTERNAL / "mnist"
REAL_CIFAR10_NPZ = SHARED_EXTERNAL / "cifar10" / "test_first1000.npz"

needs_real_mnist = pytest.mark.skipif(
    not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="needs ../shared/external/mnist"
)
needs_real_cifar10 = pytest.mark.skipif(not REAL_CIFAR10_NPZ.is_file(), reason="needs ../shared/external/cifar10")


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file; gzip-compressed when ``path`` ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def synthetic_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def write_mnist_test(folder: Path, n: int = 12, *, gz: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test files (only those) in ``folder``; returns the images [n, 28, 28] and labels."""
    images = synthetic_images(n, (28, 28), seed)
    labels = (np.arange(n) * 7 % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", labels)
    return images, labels


class _Python2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), as the official CIFAR files hold them."""

    def save_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[str] = save_str
    dispatch[bytes] = save_str


def write_cifar_batch(
    path: Path, images_nchw: np.ndarray, labels: np.ndarray, label_key: str = "labels", *, python2: bool = True
) -> Path:
    """A batch file in the official CIFAR "python version" format: a dict pickled by Python 2
    (numpy's old module path, byte strings as ``str``), or by this Python when ``python2=False``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {
        "batch_label": "testing batch 1 of 1",
        label_key: [int(v) for v in labels],
        "data": np.ascontiguousarray(images_nchw, dtype=np.uint8).reshape(len(labels), -1),
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }
    if python2:
        buffer = io.BytesIO()
        _Python2Pickler(buffer, protocol=2).dump(batch)
        payload = buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    else:
        payload = pickle.dumps(batch)
    path.write_bytes(payload)
    return path


class LinearModel(nn.Module):
    """``f(x) = W flatten(x) + b``: a model whose every measurement has a simple closed form."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone(), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(weight.shape[0]) if bias is None else bias.clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


def class_mean_model(x: torch.Tensor, y: torch.Tensor, num_classes: int = 10, scale: float = 1.0) -> LinearModel:
    """The nearest-class-mean classifier as a linear model: ``f_c(x) = s (mu_c . x - |mu_c|^2 / 2)``.

    Built without training from labelled images; on MNIST it is right about 4 times in 5.
    """
    flat = x.flatten(1).double()
    means = torch.stack([flat[y == c].mean(dim=0) for c in range(num_classes)])
    weight = (scale * means).float()
    bias = (-scale * means.pow(2).sum(dim=1) / 2).float()
    return LinearModel(weight, bias)
