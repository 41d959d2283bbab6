"""Environment probes: what a run's :class:`~invarbench.store.provenance.Provenance` (and its progress)
reads from the machine rather than from the options: the git commit of the code, the device's name
and the peak memory so far. The runner builds a run's provenance with these; tests that need a fixed
commit replace :func:`git_commit` here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def git_commit() -> str | None:
    """The commit of the invarbench checkout this code runs from (40 hex digits), or None when it
    does not run from a git checkout or git cannot tell."""
    import invarbench

    root = Path(invarbench.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def device_name(device: torch.device) -> str:
    """The ``device`` provenance field: ``cuda:<GPU name>`` on a GPU, else ``cpu``."""
    import torch

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size so far, in bytes: ``VmHWM`` on Linux (it starts afresh at
    exec), else ``ru_maxrss``, which Linux would carry over from a parent process across fork and exec;
    None where neither exists (Windows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB elsewhere


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak memory so far, in bytes: CUDA's max allocated on a GPU, else the process's peak resident
    set size (:func:`peak_rss_bytes`)."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return peak_rss_bytes()
