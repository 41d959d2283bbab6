"""Environment switches read at every call (not once at import), shared by the I/O edges."""

from __future__ import annotations

import os

_TRUE = ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to 1, true, yes or on (any case, spaces ignored)."""
    return os.environ.get(name, "").strip().lower() in _TRUE
