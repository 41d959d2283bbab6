"""``--batch-size auto``: how many images the model is given at once, found per measurement, apart
from the batch that seeds and stores the numbers.

A run's *batch* (``--batch-size``, 250 with ``auto``) is the unit of seeding, storage and
resumption: every random number of batch ``start`` comes from a generator seeded by the seed and
``start`` (:func:`invarbench.evaluation.pipeline.batch_seed`), so another batch size gives other
random starts and other numbers. Memory is a different matter: it is set by how many images pass
through the model at once. :class:`ChunkedModel` splits every forward pass of more than ``limit``
images into chunks of at most ``limit`` (under autograd each chunk is checkpointed, so only one
chunk's activations are alive at a time, at the price of recomputing its forward pass in the
backward one); the attacks see the same logits and gradients, row for row, and draw the same random
numbers, so the numbers do not change.

:class:`MemoryPlan` keeps one limit per measurement (PGD, FMN and NSPGD need gradients, path widths
only forward passes with their own image budget; the clean forward pass is ``clean``). Every
measurement starts without a limit; when it runs out of memory, it is run again on the same batch
from the same random state with half the largest number of images it had given the model at once,
down to one image: finished batches and the batch's finished measurements are kept, and a
measurement that does not fit with one image raises :class:`OutOfMemory`. A limit, once lowered,
holds for the rest of the run; the run records, per measurement, the most images the model was
given at once (``MemoryPlan.used``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from invarbench.errors import InvarbenchError

T = TypeVar("T")


class OutOfMemory(InvarbenchError):
    """A measurement ran out of memory with one image at a time, or without ``--batch-size auto``."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error: CUDA's (``torch.cuda.OutOfMemoryError``) or the
    CPU allocator's (a RuntimeError that says it cannot allocate memory)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


class ChunkedModel(nn.Module):
    """``model``, given at most ``limit`` images per forward pass (None: no limit). Logits ``[B, K]``
    are those of ``model`` on each chunk, concatenated in order. Every other attribute is the wrapped
    model's (the wrapper's ``trusted_inputs``, ``reset_nonfinite``, ``input_shape``, ...).
    ``largest`` is the most images one forward pass of ``model`` has been given."""

    def __init__(self, model: nn.Module, limit: int | None) -> None:
        super().__init__()
        self.inner = model
        self.limit = limit
        self.largest = 0

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        self.largest = max(self.largest, int(x.shape[0]))
        return self.inner(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.limit is None or x.shape[0] <= self.limit:
            return self._run(x)
        parts = x.split(self.limit)
        if torch.is_grad_enabled():
            # No early stop: it ends the recomputation by raising inside the model's forward, which
            # the model wrapper would report as the model's error.
            with set_checkpoint_early_stop(False):
                return torch.cat([checkpoint(self._run, p, use_reentrant=False) for p in parts])
        return torch.cat([self._run(p) for p in parts])


class MemoryPlan:
    """The per-measurement image limits of one process's run (see the module doc). ``auto``: back off
    on out-of-memory errors; otherwise such an error raises :class:`OutOfMemory` at once, naming
    ``--batch-size auto``."""

    def __init__(self, auto: bool) -> None:
        self.auto = auto
        self.limits: dict[str, int | None] = {}
        self.used: dict[str, int] = {}
        self.backoffs = 0

    def run(self, name: str, model: nn.Module, measure: Callable[[nn.Module], T], reset: Callable[[], None]) -> T:
        """``measure(chunked_model)`` for measurement ``name``; on an out-of-memory error, ``reset()``
        (restore the measurement's random state) and again with half as many images at once. Raises
        :class:`OutOfMemory` at one image (or at once without ``auto``); other errors pass."""
        while True:
            chunked = ChunkedModel(model, self.limits.get(name))
            try:
                out = measure(chunked)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                at_once = chunked.largest if chunked.limit is None else min(chunked.limit, chunked.largest)
                del exc
                _free_memory()
                if not self.auto:
                    raise OutOfMemory(
                        f"out of memory in {name} with {at_once} image(s) at once: use --batch-size auto "
                        "(or a smaller --batch-size)"
                    ) from None
                if at_once <= 1:
                    raise OutOfMemory(
                        f"out of memory in {name} with one image at a time: the model does not fit on this "
                        "device; use one with more memory"
                    ) from None
                self.limits[name] = at_once // 2
                self.backoffs += 1
                reset()
                continue
            if chunked.largest:  # a measurement that runs the model
                self.used[name] = max(self.used.get(name, 0), chunked.largest)
            return out

    def record(self) -> dict[str, int]:
        """Per measurement that ran the model: its limit where it was lowered, else the most images it
        was given at once (what the run records as ``images_at_once``)."""
        return {name: self.limits.get(name) or used for name, used in sorted(self.used.items())}


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
