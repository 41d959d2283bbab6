"""The sha256 that a card pins its model file with: computed (``cards new``) and verified (before a load).

Both refuse a Git LFS pointer: the small text file that a clone without Git LFS holds in place of
a model file committed with LFS. Its checksum would never match (or, computed by ``cards new``,
would pin the pointer), so it is named as what it is, with the command that fetches the real file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from invarbench.errors import ValidationError

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_LFS_MAX_POINTER_BYTES = 1024  # the spec: a pointer is under 1024 bytes
_LFS_SIZE_RE = re.compile(rb"^size (\d+)$", re.MULTILINE)


def lfs_pointer_size(path: Path | str) -> int | None:
    """If ``path`` is a Git LFS pointer file, the size in bytes of the file it stands for (0 when the pointer
    does not say); None for any other file. Reads at most 1 KiB."""
    with open(path, "rb") as fh:
        head = fh.read(_LFS_MAX_POINTER_BYTES + 1)
    if len(head) > _LFS_MAX_POINTER_BYTES or not head.startswith(LFS_POINTER_PREFIX):
        return None
    match = _LFS_SIZE_RE.search(head)
    return int(match.group(1)) if match else 0


def refuse_lfs_pointer(path: Path | str, where: str) -> None:
    """Raise :class:`ValidationError` naming the fix when ``path`` is a Git LFS pointer, not the file itself."""
    size = lfs_pointer_size(path)
    if size is None:
        return
    real = f" for a {size:,}-byte file" if size else ""
    raise ValidationError(
        f"{where}: {Path(path).name} is a Git LFS pointer{real}, not the file itself: fetch the real file with "
        "'git lfs pull' (after 'git lfs install'; or download it from the repository's web page), then retry"
    )


def sha256_file(path: Path | str) -> str:
    """The sha256 of a file's bytes, as 64 lowercase hex characters (of whatever file: see :func:`model_sha256`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_sha256(path: Path | str, where: str) -> str:
    """The sha256 of a model file for a card; :class:`ValidationError` if it is a Git LFS pointer."""
    refuse_lfs_pointer(path, where)
    return sha256_file(path)


def verify_sha256(path: Path, expected: str | None, where: str) -> str:
    """Check the model file's sha256 against the card's; return it. Runs before anything reads the file as a
    model. Raises :class:`ValidationError` on a mismatch, or for a Git LFS pointer in place of the file."""
    actual = model_sha256(path, where)
    if expected is not None and actual != expected:
        raise ValidationError(
            f"{where}: checksum mismatch for {path.name}: the card says sha256 {expected}, "
            f"the file has {actual}. The file is not the one the card registered; nothing was loaded."
        )
    return actual
