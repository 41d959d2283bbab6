"""Derive ``original_labels.json`` (the MNIST test labels of the human-invariance probe images) from
the MNIST test labels IDX file, once; the measurement then needs no MNIST files.

    python invarbench/measurements/human_invariance_data/derive_original_labels.py MNIST_DIR

``MNIST_DIR`` holds ``t10k-labels-idx1-ubyte`` (gzip or not), the 10,000 test labels in the order
of the IDX file. The upstream ``indexs.npy`` (the 100 images of the automated L∞ and L0 sets) and
``linf/manual_indexs.npy`` (the 50 images of the manual L∞ set) index that order: the original
label of an image is the test label at its index (the upstream's ``Demo.ipynb`` reads them the same
way, through Keras' ``mnist.load_data``, which holds the IDX files' order). The file is written
beside this script; ``tests/test_human_invariance.py`` derives it again when the MNIST files exist
and compares.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from invarbench.data.native import read_idx
from invarbench.errors import ValidationError

HERE = Path(__file__).resolve().parent
INDEX_FILES = ("indexs.npy", "linf/manual_indexs.npy")
LABEL_NAMES = ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte")


def derive(mnist_dir: Path, folder: Path = HERE) -> dict:
    """The document of ``original_labels.json``: per index file, the MNIST test label at each of its
    indices (int, in the file's order), and the name and sha256 of the labels file read. Raises
    :class:`ValidationError` when the labels file is missing or is not the 10,000 test labels."""
    path = next((mnist_dir / n for n in LABEL_NAMES if (mnist_dir / n).is_file()), None)
    if path is None:
        raise ValidationError(f"no {' or '.join(LABEL_NAMES)} in {mnist_dir}: give the folder of the MNIST test files")
    labels = read_idx(path)
    if labels.shape != (10_000,):
        raise ValidationError(f"{path} holds labels of shape {labels.shape}, not the 10,000 MNIST test labels")
    doc: dict = {
        "source": {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
        "labels": {},
    }
    for name in INDEX_FILES:
        index = np.load(folder / name, allow_pickle=False)
        doc["labels"][name] = [int(v) for v in labels[index]]
    return doc


def text(doc: dict) -> str:
    """The JSON text as the file holds it (sorted keys, one line, newline at the end)."""
    return json.dumps(doc, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: derive_original_labels.py MNIST_DIR", file=sys.stderr)
        return 2
    try:
        doc = derive(Path(argv[0]))
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (HERE / "original_labels.json").write_text(text(doc))
    print(f"wrote {HERE / 'original_labels.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
