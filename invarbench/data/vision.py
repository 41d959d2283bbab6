"""``mnist``, ``cifar10`` and ``cifar100``: the torchvision data sets, read from their native files.

The files live in ``--data-dir`` (default ``$INVARBENCH_DATA``, else
``$XDG_DATA_HOME/invarbench/data``, i.e. ``~/.local/share/invarbench/data``) in torchvision's
layout, so a folder that torchvision filled works as it is:

- mnist: ``MNIST/raw/t10k-images-idx3-ubyte[.gz]`` and ``MNIST/raw/t10k-labels-idx1-ubyte[.gz]``
  (``train-*`` for the train split); the files may also sit directly in the data folder;
- cifar10: ``cifar-10-batches-py/test_batch`` (``data_batch_1`` .. ``data_batch_5`` for train);
- cifar100: ``cifar-100-python/test`` (``train``).

An evaluation needs only the test files, and they may hold only the first test images (a
``test_batch`` of the official file's first 1,000 rows, an IDX pair of the first 1,000): a run
evaluates the first ``num_examples`` and gets the data digest of the full split's first
``num_examples`` (:mod:`invarbench.data.digests`). When they are missing, invarbench downloads them with
torchvision's download helpers (checksums verified) unless ``INVARBENCH_OFFLINE=1``; when that
is set or the download fails, the error names the folder and the files it expected.
The published order of each test split is the order of its file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from invarbench.data.folders import default_data_dir
from invarbench.data.native import read_cifar_batch, read_idx
from invarbench.data.registry import DatasetSpec, register_dataset
from invarbench.env import env_flag
from invarbench.errors import NotFoundError, ValidationError


def offline() -> bool:
    return env_flag("INVARBENCH_OFFLINE")


def _check_split(dataset: str, split: str) -> None:
    if split not in ("train", "test"):
        raise ValidationError(f"data set '{dataset}' has splits 'train' and 'test', not '{split}'")


def _missing(dataset: str, folder: Path, files: list[str], reason: str) -> NotFoundError:
    return NotFoundError(
        f"data set '{dataset}' needs {', '.join(files)} in {folder}; {reason}. Put the files there, "
        f"or pass --data-dir with a folder that holds them"
    )


def _download(dataset: str, folder: Path, files: list[str], fetch: Callable[[], None]) -> None:
    if offline():
        raise _missing(dataset, folder, files, "they are missing and INVARBENCH_OFFLINE is set, so none was downloaded")
    try:
        fetch()
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one clear message
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _missing(dataset, folder, files, f"they are missing and downloading them failed ({reason})") from None


# --- MNIST -----------------------------------------------------------------------------------
_MNIST_PREFIX = {"test": "t10k", "train": "train"}


def _find(folders: list[Path], name: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_mnist(split: str, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    _check_split("mnist", split)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    raw = root / "MNIST" / "raw"
    names = [f"{_MNIST_PREFIX[split]}-images-idx3-ubyte", f"{_MNIST_PREFIX[split]}-labels-idx1-ubyte"]
    found = [_find([raw, root], n) for n in names]
    if None in found:

        def fetch() -> None:
            from torchvision.datasets import MNIST
            from torchvision.datasets.utils import download_and_extract_archive

            for filename, md5 in MNIST.resources:
                if not filename.startswith(_MNIST_PREFIX[split]):
                    continue
                errors = []
                for mirror in MNIST.mirrors:
                    try:
                        download_and_extract_archive(
                            f"{mirror}{filename}", download_root=raw, filename=filename, md5=md5
                        )
                        break
                    except Exception as exc:  # noqa: BLE001 - try the next mirror
                        errors.append(str(exc))
                else:
                    raise RuntimeError("; ".join(errors))

        _download("mnist", raw, [f"{n}[.gz]" for n in names], fetch)
        found = [_find([raw, root], n) for n in names]
        if None in found:
            raise _missing("mnist", raw, [f"{n}[.gz]" for n in names], "the download did not produce them")
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValidationError(f"{found[0]}: expected uint8 images [N, 28, 28], got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValidationError(
            f"{found[1]} holds {labels.shape[0]} labels for the {images.shape[0]} images of {found[0]}"
        )
    return images[:, None], labels.astype(np.int64)


# --- CIFAR -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cifar:
    name: str
    torchvision_class: str
    label_key: str
    num_classes: int


def _cifar_loader(meta: _Cifar) -> Callable[[str, Path | None], tuple[np.ndarray, np.ndarray]]:
    def load(split: str, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        import torchvision.datasets as tvd

        _check_split(meta.name, split)
        cls = getattr(tvd, meta.torchvision_class)
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        folder = root / cls.base_folder
        names = [entry[0] for entry in (cls.test_list if split == "test" else cls.train_list)]
        if not all((folder / n).is_file() for n in names):

            def fetch() -> None:
                from torchvision.datasets.utils import download_and_extract_archive

                download_and_extract_archive(cls.url, download_root=root, filename=cls.filename, md5=cls.tgz_md5)

            _download(meta.name, folder, names, fetch)
            if not all((folder / n).is_file() for n in names):
                raise _missing(meta.name, folder, names, "the download did not produce them")
        parts = [read_cifar_batch(folder / n, meta.label_key) for n in names]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= meta.num_classes):
            raise ValidationError(f"{folder}: labels outside 0..{meta.num_classes - 1}; is this {meta.name}?")
        return images, labels

    return load


DIGITS = tuple(str(k) for k in range(10))  # MNIST's classes: the digit each label stands for
# The class names in label order, as the data sets' own files publish them: CIFAR-10's batches.meta
# (label_names) and CIFAR-100's meta (fine_label_names, in alphabetical order).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR100_NAMES = """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
worm"""
CIFAR100_CLASSES = tuple(_CIFAR100_NAMES.split())

register_dataset(
    DatasetSpec(
        name="mnist",
        num_classes=10,
        input_shape=(1, 28, 28),
        description="MNIST handwritten digits (torchvision files); 60,000 train / 10,000 test",
        loader=load_mnist,
        class_names=DIGITS,
    )
)
for _meta, _desc, _names in (
    (
        _Cifar("cifar10", "CIFAR10", "labels", 10),
        "CIFAR-10 (torchvision files); 50,000 train / 10,000 test",
        CIFAR10_CLASSES,
    ),
    (
        _Cifar("cifar100", "CIFAR100", "fine_labels", 100),
        "CIFAR-100, fine labels (torchvision files); 50,000 train / 10,000 test",
        CIFAR100_CLASSES,
    ),
):
    register_dataset(
        DatasetSpec(
            name=_meta.name,
            num_classes=_meta.num_classes,
            input_shape=(3, 32, 32),
            description=_desc,
            loader=_cifar_loader(_meta),
            class_names=_names,
        )
    )
