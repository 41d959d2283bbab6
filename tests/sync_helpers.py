"""Counting host-device synchronisations: every call that makes the host wait for a tensor's value
(``.item()``, ``bool``/``int``/``float`` of a tensor, ``.tolist()``, ``.cpu()``, ``.numpy()``,
``torch.nonzero`` and indexing with a boolean mask), seen through a torch function mode. On the
CPU nothing waits, but the same calls would on a GPU, so the count is the GPU's."""

from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode

SYNCING = {
    "item",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "tolist",
    "cpu",
    "numpy",
    "nonzero",
    "masked_select",
}


def _mask(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    if isinstance(value, tuple):
        return any(_mask(v) for v in value)
    return False


class CountSyncs(TorchFunctionMode):
    """``with CountSyncs() as syncs: ...``; then ``syncs.total`` and ``syncs.calls`` (name -> count)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING or (name in ("__getitem__", "__setitem__") and len(args) > 1 and _mask(args[1])):
            self.calls[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.calls.values())
