"""Progress reporting through a callback, so that computation never prints.

A :data:`ProgressFactory` is called with a description and a total and returns an ``advance(n)``
function. The CLI passes one that drives a rich progress bar; library callers pass nothing.
"""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int], Advance]


def _noop(_: int) -> None:
    return None


def no_progress(description: str, total: int) -> Advance:  # noqa: ARG001 - the null reporter
    return _noop
