"""What PGD and APGD share: the norm of the threat model, the projection onto the ``eps`` ball and the
box, the result type, and the bookkeeping of broken examples over the runs of an attack.

PGD (Madry et al., 2018; :mod:`invarbench.attacks.pgd`) and APGD (Croce and Hein, 2020;
:mod:`invarbench.attacks.apgd`) attack a batch in *runs* (PGD: one per restart; APGD: one per
target class and restart). Each run starts from the examples not broken yet
(:meth:`Tally.runs`), checks every iterate (:meth:`Tally.check`: an example is *broken* at its
first misclassified iterate, the random start included, and stays broken), and at its end keeps
the final point of the examples that survived it (:meth:`Tally.finish`). docs/measurements.md
§1.1 states the protocol. Images are float tensors ``[n, C, H, W]`` in [0, 1] pixel space and
``eps`` is measured in that space, in the L-inf or the L2 norm.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from invarbench.attacks._tensors import DIVISOR_FLOOR, per_example

Norm = Literal["linf", "l2"]
NORMS: tuple[Norm, ...] = ("linf", "l2")


def check_norm(norm: str) -> None:
    """Raise ``ValueError`` unless ``norm`` is ``"linf"`` or ``"l2"``."""
    if norm not in NORMS:
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")


def project(delta: torch.Tensor, x0: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """``x0 + delta`` with the perturbation projected onto the ``eps`` ball, then clamped to [0, 1].

    ``delta``, ``x0``: float ``[m, C, H, W]`` (same dtype and device); ``eps`` in pixel units of
    ``norm``. L-inf clamps every entry of ``delta`` to [-eps, eps]; L2 scales each example's
    ``delta`` down to norm ``eps`` when it is longer (a zero ``delta`` stays zero). Returns a new
    tensor ``[m, C, H, W]``; ``delta`` and ``x0`` are not modified.
    """
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        size = delta.flatten(1).norm(dim=1)
        delta = delta * per_example(torch.clamp(eps / size.clamp_min(DIVISOR_FLOOR), max=1.0), x0)
    return (x0 + delta).clamp_(0.0, 1.0)


@dataclass
class AttackResult:
    """The outcome of PGD or APGD, per example of the batch ``x [n, C, H, W]``.

    ``robust``: bool ``[n]``, never broken. ``broken_at``: int64 ``[n]``, ``run * (steps + 1) +
    iterate`` of the first misclassified iterate, iterate 0 being the random start (PGD: ``run`` is
    the restart; APGD: ``run = t * restarts + restart``, ``t`` the target's index, 0 for APGD-CE);
    -1 when misclassified clean; ``runs * (steps + 1)`` when robust. ``x_adv``: ``[n, C, H, W]``,
    dtype and device of ``x``, in [0, 1]: the first misclassified iterate, the clean image for
    clean-misclassified examples, and for robust examples the end point of the last run (PGD: its
    last iterate, or with cycle detection the repeated iterate that ended it; APGD: its
    highest-loss iterate). ``forward_backward_passes``: int, the example-level gradient
    computations (cost accounting).
    """

    robust: torch.Tensor
    broken_at: torch.Tensor
    x_adv: torch.Tensor
    forward_backward_passes: int


class Tally:
    """The running outcome of an attack on ``x [n, C, H, W]`` with labels ``y`` (int64 ``[n]``).

    Starts from the clean logits ``[n, classes]``: examples misclassified clean are broken at -1,
    the others robust with ``broken_at = iterates`` (the attack's ``runs * (steps + 1)``) until an
    iterate breaks them. ``passes`` counts example-level gradient computations; the attack adds
    to it. :meth:`result` gives the :class:`AttackResult`.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, clean_logits: torch.Tensor, iterates: int) -> None:
        self.robust = clean_logits.argmax(dim=1) == y
        self.broken_at = torch.full((x.shape[0],), iterates, dtype=torch.long, device=x.device)
        self.broken_at[~self.robust] = -1
        self.x_adv = x.clone()
        self.passes = 0

    def runs(self, count: int) -> Iterator[tuple[int, torch.Tensor]]:
        """``(run, idx)`` for ``run`` in ``range(count)``, ``idx`` (int64 ``[m]``) the rows not broken
        yet; stops early once every example is broken."""
        for run in range(count):
            idx = torch.nonzero(self.robust).squeeze(1)
            if idx.numel() == 0:
                return
            yield run, idx

    def check(
        self,
        logits: torch.Tensor,
        y0: torch.Tensor,
        alive: torch.Tensor,
        idx: torch.Tensor,
        xa: torch.Tensor,
        at: int,
    ) -> int:
        """Record the examples that the iterate ``xa [m, C, H, W]`` breaks first.

        ``logits``: ``[m, classes]`` at ``xa``; ``y0``: int64 ``[m]``; ``idx``: int64 ``[m]``, their
        rows in ``x``; ``alive``: bool ``[m]``, not broken yet, cleared in place for the examples
        broken now; ``at``: the iterate's index over runs (``run * (steps + 1) + iterate``). Returns
        how many examples broke (the one value that waits for the device).
        """
        first = (logits.argmax(dim=1) != y0) & alive
        n_first = int(first.sum())
        if n_first:
            hit = idx[first]
            self.robust[hit] = False
            self.broken_at[hit] = at
            self.x_adv[hit] = xa[first]
            alive &= ~first
        return n_first

    def finish(self, idx: torch.Tensor, alive: torch.Tensor, end: torch.Tensor) -> None:
        """At the end of a run, keep ``end [m, C, H, W]`` (the run's end point) as ``x_adv`` of the rows
        ``idx [m]`` still ``alive [m]``. An empty ``idx`` (every example left the run) keeps nothing."""
        if idx.numel():
            self.x_adv[idx[alive]] = end[alive]

    def result(self) -> AttackResult:
        return AttackResult(
            robust=self.robust, broken_at=self.broken_at, x_adv=self.x_adv, forward_backward_passes=self.passes
        )
