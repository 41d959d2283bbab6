"""Readers for the data sets' native file formats, with checks and clear errors.

- MNIST: IDX files (``t10k-images-idx3-ubyte``, gzip or not), a big-endian header then raw bytes.
- CIFAR-10/100: the official "python version" batches, which are Python pickles of a dict of
  numpy arrays. invarbench reads them with a restricted unpickler that can rebuild numpy arrays
  and nothing else, so a tampered batch file cannot run code (torchvision's reader uses plain
  ``pickle.load``).
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from invarbench.errors import ValidationError

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValidationError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValidationError(f"{path} is truncated (incomplete IDX header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - header != count * dtype.itemsize:
        raise ValidationError(
            f"{path} is truncated or corrupt: its header announces shape {shape} "
            f"({count * dtype.itemsize} bytes) but it holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # pickle's protocol
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a data batch holds only numpy arrays")


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 [N, 3, 32, 32]) and labels (int64 [N]) of one CIFAR batch file."""
    try:
        with open(path, "rb") as f:
            # latin1: the official files were pickled by Python 2.
            batch = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise ValidationError(f"{path} is not a CIFAR data batch: {exc}") from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc}") from None
    if not isinstance(batch, dict):
        raise ValidationError(f"{path} is not a CIFAR data batch (expected a dict, got {type(batch).__name__})")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise ValidationError(f"{path} is not a CIFAR data batch: it lacks 'data' or '{label_key}'")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValidationError(
            f"{path}: expected uint8 data [N, 3072] and N labels, got {data.dtype} {data.shape} and {labels.shape[0]}"
        )
    # Each row holds the red, green and blue 32x32 planes in turn: NCHW after a reshape.
    return data.reshape(-1, 3, 32, 32), labels
