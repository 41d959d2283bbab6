"""The data set registry, the evaluation data container, and custom ``npz:PATH`` evaluation sets.

A data set is one module that calls :func:`register_dataset` with a :class:`DatasetSpec`; the built-in
ones are imported by :mod:`invarbench.data`. Data sets of one's own take the measurements' plug-in
route: the modules named (comma-separated) in ``$INVARBENCH_DATASETS`` and those that installed packages
declare under the entry-point group ``invarbench.datasets`` are imported the first time the registry is
read. Everything else (cards, suites, runs, exports, the site, ``cards new``) reads data sets from it.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from invarbench.data.digests import examples_digest
from invarbench.data.folders import default_data_dir
from invarbench.errors import NotFoundError, OptionError, ValidationError
from invarbench.registry import PluginRoute, Registry

# loader(split, data_dir) -> (images uint8 [N, C, H, W], labels int64 [N])
Loader = Callable[[str, Path | None], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetSpec:
    """One data set: its ``name`` (what cards and suites name; a suite file per suite lives at
    ``suites/<suite>/<name>.yaml``), ``num_classes``, ``input_shape`` (C, H, W) of its images, a one-line
    ``description`` (give the test split's size as "N test"; the site reads it) and ``loader(split,
    data_dir) -> (images uint8 [N, C, H, W], labels int64 [N])`` in the split's published order, raising
    :class:`NotFoundError` naming the files it needs when they are missing. ``class_names``: the name of each
    label 0..``num_classes - 1`` in label order, as the data set publishes them ("airplane", ..., "truck" for
    CIFAR-10; "0".."9" for MNIST), or empty when it names none; :class:`ValueError` when given with another
    length than ``num_classes`` or with an empty name."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    description: str
    loader: Loader
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = self.class_names
        if names and (len(names) != self.num_classes or not all(isinstance(n, str) and n.strip() for n in names)):
            raise ValueError(
                f"data set '{self.name}': class_names must give one non-empty name per class "
                f"({self.num_classes}), got {len(names)}; give them in label order, or none"
            )


@dataclass(frozen=True)
class EvalData:
    """Images in [0, 1] (float32, NCHW) and labels, plus where they came from."""

    dataset: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    total: int  # size of the full split before --limit
    # Where the images came from: the data set's name, or "npz:<path> sha256:<digest>" for a
    # custom evaluation set that replaced the data set's images (the data set still picks the suite).
    source: str = ""
    # The data digest of these examples (invarbench.data.digests.examples_digest): "v1:<sha256 hex>"
    # of the uint8 images and int64 labels in order, whatever file they were read from.
    digest: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])


DATASETS_ENV = "INVARBENCH_DATASETS"
DATASETS: Registry[DatasetSpec] = Registry("dataset", PluginRoute(DATASETS_ENV, "invarbench.datasets"))


def class_name(dataset: str, label: int) -> str:
    """The name of class ``label`` (an int) of the registered data set ``dataset``: its ``class_names`` entry
    ("ship" for CIFAR-10's label 8, "7" for MNIST's 7), else the label as text ("8") when the data set names
    no classes, is not registered here (a stored run of a plug-in data set) or has no such label."""
    try:
        names = DATASETS.get(dataset).class_names
    except NotFoundError:
        names = ()
    return names[label] if 0 <= label < len(names) else str(label)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` (``ValueError`` when its name is taken)."""
    DATASETS.add(spec.name, spec)
    return spec


def load_eval_data(
    dataset: str,
    *,
    split: str = "test",
    data_dir: Path | None = None,
    limit: int | None = None,
    custom: str | None = None,
) -> EvalData:
    """Load the first ``limit`` examples of ``split`` of ``dataset`` in its published order.

    ``custom="npz:PATH"`` replaces the data set's images by those of an ``.npz`` file (see
    :func:`read_custom_npz`); ``dataset`` still names the data set (and so the suite's budgets).
    The data set's own files may hold only a prefix of the split (e.g. the first 1,000 CIFAR-10
    test images in a ``test_batch`` of 1,000 rows): they must then hold at least ``limit`` images,
    else :class:`ValidationError` says how many they hold. A custom set may hold fewer (all are
    evaluated). The returned :class:`EvalData` carries the examples' data digest. A ``limit`` below 1 or a
    ``custom`` that is not ``npz:PATH`` raises :class:`OptionError` (``limit``, ``data``), which the command
    line says with its flag.
    """
    spec = DATASETS.get(dataset)
    if custom is not None:
        images, labels, source = read_custom_npz(custom, spec)
    else:
        images, labels = spec.loader(split, data_dir)
        source = dataset
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != spec.input_shape:
        raise ValidationError(
            f"data set '{dataset}' gave images of shape {images.shape} and dtype {images.dtype}; "
            f"expected uint8 [N, {', '.join(map(str, spec.input_shape))}]"
        )
    total = int(labels.shape[0])
    if limit is not None:
        if limit < 1:
            raise OptionError("limit", f"{{option}} must be at least 1, got {limit}")
        if custom is None and total < limit:
            raise ValidationError(
                f"the {split} files of data set '{dataset}' in {_folder(data_dir)} hold {total} images, "
                f"fewer than the {limit} to evaluate: put a copy that holds at least the first {limit} there "
                f"(or pass --data-dir with one), or pass --limit {total} for a smoke run (never ranked)"
            )
        images, labels = images[:limit], labels[:limit]
    # A fresh tensor with the canonical NCHW strides: an array transposed from NHWC with one channel
    # counts as contiguous yet keeps odd strides, and convolutions then take another kernel whose
    # numbers differ in the last bits. The same images must give the same numbers.
    x = torch.empty(images.shape, dtype=torch.float32).copy_(torch.from_numpy(images)).div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(labels)).long()
    digest = examples_digest(images, labels)
    return EvalData(dataset=dataset, split=split, x=x, y=y, total=total, source=source, digest=digest)


def _folder(data_dir: Path | None) -> str:
    """Where the data set's files were read from, for messages."""
    if data_dir is not None:
        return str(data_dir)
    return f"{default_data_dir()} (the default data folder)"


def read_custom_npz(custom: str, spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray, str]:
    """Read ``npz:PATH``: arrays ``x`` (uint8 images, NHWC or NCHW) and ``y`` (integer labels).

    Returns images as uint8 NCHW, labels as int64 and the source string for provenance. The
    file is read with ``allow_pickle=False``: it can hold plain arrays only.
    """
    scheme, sep, raw_path = custom.partition(":")
    if scheme != "npz" or not sep or not raw_path:
        raise OptionError(
            "data", f"{{option}} must look like npz:PATH (a .npz file with arrays x and y), got '{custom}'"
        )
    path = Path(raw_path).expanduser()
    if not path.is_file():
        raise NotFoundError(f"custom evaluation set {path} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
            raise ValidationError(f"{path} is not a readable .npz file (not a zip archive): save it with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            if not {"x", "y"} <= names:
                raise ValidationError(
                    f"{path} must hold arrays 'x' (images) and 'y' (labels); "
                    f"it holds: {', '.join(sorted(names)) or 'none'}"
                )
            x, y = npz["x"], npz["y"]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValidationError(f"{path} is not a readable .npz file: {exc}") from None
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise ValidationError(
            f"{path} holds arrays that need pickle to load ({exc}); save plain numeric arrays"
        ) from None
    c, h, w = spec.input_shape
    if x.dtype != np.uint8:
        raise ValidationError(f"{path}: x must be uint8 images (0..255), got dtype {x.dtype}")
    if x.ndim == 3 and c == 1:
        x = x[:, None]
    if x.ndim == 4 and tuple(x.shape[1:]) == (c, h, w):
        pass
    elif x.ndim == 4 and tuple(x.shape[1:]) == (h, w, c):
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ValidationError(
            f"{path}: x has shape {list(x.shape)}; data set '{spec.name}' needs images [N, {c}, {h}, {w}] (NCHW) "
            f"or [N, {h}, {w}, {c}] (NHWC)"
        )
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValidationError(f"{path}: y must be a 1-D array of integer labels, got {y.dtype} {list(y.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValidationError(f"{path}: x holds {x.shape[0]} images but y holds {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValidationError(f"{path}: the evaluation set is empty")
    if int(y.min()) < 0 or int(y.max()) >= spec.num_classes:
        raise ValidationError(
            f"{path}: labels must lie in 0..{spec.num_classes - 1} for data set '{spec.name}', "
            f"got {int(y.min())}..{int(y.max())}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return np.ascontiguousarray(x), y.astype(np.int64), f"npz:{path.resolve()} sha256:{digest}"
