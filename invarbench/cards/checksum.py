"""The sha256 that a card pins its model file with: computed (``cards new``) and verified (before a load)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from invarbench.errors import ValidationError


def sha256_file(path: Path | str) -> str:
    """The sha256 of a file's bytes, as 64 lowercase hex characters."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None, where: str) -> str:
    """Check the file's sha256 against the card's; return it. Runs before anything reads the file."""
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise ValidationError(
            f"{where}: checksum mismatch for {path.name}: the card says sha256 {expected}, "
            f"the file has {actual}. The file is not the one the card registered; nothing was loaded."
        )
    return actual
