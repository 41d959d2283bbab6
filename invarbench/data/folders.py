"""Where the data sets' files live when a command names no ``--data-dir``."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """``$INVARBENCH_DATA``, else ``$XDG_DATA_HOME/invarbench/data`` (``~/.local/share/...``)."""
    explicit = os.environ.get("INVARBENCH_DATA")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "invarbench" / "data"
