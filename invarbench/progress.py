"""Progress reporting through a callback, so that computation never prints.

A :data:`ProgressFactory` is called with a description and a total and returns an
``advance(n, note=None)`` function: ``n`` units are done, and ``note`` (when given) says what is
being worked on now, e.g. ``"examples 0-250: pgd_l2 step 12/40"``. The CLI passes one that drives
a rich progress bar; library callers pass nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Advance(Protocol):
    def __call__(self, n: int, note: str | None = None) -> None: ...


ProgressFactory = Callable[[str, int], Advance]
Note = Callable[[str], None]  # what a long computation reports between two advances


def _noop(n: int, note: str | None = None) -> None:  # noqa: ARG001 - the null reporter
    return None


def no_progress(description: str, total: int) -> Advance:  # noqa: ARG001 - the null reporter
    return _noop
