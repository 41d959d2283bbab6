"""NSPGD, null-space projected gradient descent (docs/measurements.md §2), over many (source, target) pairs.

NSPGD is this project's protocol: it measures the excessive invariance of Jacobsen et al. (2019;
docs/measurements.md, References), it is not an attack taken from a publication. Images are
float tensors ``[n, C, H, W]`` in [0, 1] pixel space; every distance is an L2 norm in that space.

Each pair walks from its source ``x0`` (class ``c``) toward its target ``t``::

    g  = grad_x p_c(x)                       # p_c = softmax(f(x))_c
    v  = t - x
    if <g, v> < 0:  v = v - (<g, v> / <g, g>) g
    x' = clip(x + eta * v, 0, 1)
    accept x = x'  only where  p_c(x0) - p_c(x') < delta;  a refused pair is finished

The forward pass at ``x'`` that checks the acceptance keeps its graph, and its backward gives
``g`` at ``x'`` for the next iteration: one forward and one backward per active pair and
iteration. Finished pairs leave the batch. The check of the last iteration (which no further
step needs) runs without a graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from invarbench.attacks._tensors import MASKED_DIVISOR_FLOOR, per_example

_TINY = MASKED_DIVISOR_FLOOR


@dataclass(frozen=True)
class NSPGDConfig:
    """Hyperparameters of NSPGD (docs/measurements.md §2). ``eta``: fraction of the remaining way
    to the target per step (dimensionless, in (0, 1]); ``delta``: tolerated drop of the source
    confidence ``p_c(x0) - p_c(x')`` (a probability, > 0); ``max_iter``: K, the number of
    iterations; ``record_at``: iterations i (0 <= i < K) whose iterate x_i (the point before
    step i, i.e. after i accepted steps) is recorded as a path point (for the path widths, §3).

    Raises ``ValueError`` unless ``0 < eta <= 1``, ``delta > 0``, ``max_iter >= 0`` and
    ``record_at`` holds distinct iterations in ``[0, max_iter)``.
    """

    eta: float = 0.05
    delta: float = 0.05
    max_iter: int = 100
    record_at: tuple[int, ...] = field(default=(), metadata={"internal": True})  # set per group, not by a suite

    def __post_init__(self) -> None:
        if not 0 < self.eta <= 1:
            raise ValueError("NSPGD needs 0 < eta <= 1")
        if not self.delta > 0:
            raise ValueError("NSPGD needs delta > 0")
        if self.max_iter < 0:
            raise ValueError("NSPGD needs max_iter >= 0")
        rec = tuple(int(i) for i in self.record_at)
        if any(i < 0 or i >= self.max_iter for i in rec) or len(set(rec)) != len(rec):
            raise ValueError(f"record_at needs distinct iterations in [0, {self.max_iter}), got {self.record_at}")
        object.__setattr__(self, "record_at", rec)


@dataclass
class NSPGDResult:
    """Per pair (``n`` pairs, ``P = len(record_at)`` recorded iterations): the final iterate
    ``x_final`` (``[n, C, H, W]``, like ``x0``, in [0, 1]), the remaining L2 distance to the target
    ``remaining_l2`` (``[n]``, pixel space), ``closure`` ``1 - ||x_K - t|| / ||x0 - t||`` (``[n]``; 1
    where ``x0 == t``), whether the final prediction is still the source class
    (``still_source``, bool ``[n]``), the number of accepted steps (``accepted_steps``, int64
    ``[n]``), the source confidence at the start and at the end (``p_source_start``,
    ``p_source_final``, ``[n]`` probabilities); and the recorded path points (``path_points``,
    ``[n, P, C, H, W]``), the unit (L2) direction of the step proposed there (``path_dirs``, same
    shape; the step taken when it was accepted; zero when the proposal did not move), and whether
    the pair was still walking at that iteration (``path_valid``, bool ``[n, P]``)."""

    x_final: torch.Tensor
    remaining_l2: torch.Tensor
    closure: torch.Tensor
    still_source: torch.Tensor
    accepted_steps: torch.Tensor
    p_source_start: torch.Tensor
    p_source_final: torch.Tensor
    path_points: torch.Tensor
    path_dirs: torch.Tensor
    path_valid: torch.Tensor
    forward_backward_passes: int  # pair-level count of backward passes (cost accounting)


def _source_confidence(model: nn.Module, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)
    p = torch.softmax(logits, dim=1).gather(1, c[:, None]).squeeze(1)
    return p, logits.detach().argmax(dim=1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(dim=1)


def nspgd(
    model: nn.Module,
    x0: torch.Tensor,
    source_class: torch.Tensor,
    target: torch.Tensor,
    cfg: NSPGDConfig,
    *,
    on_step: Callable[[int, int], None] | None = None,
) -> NSPGDResult:
    """Run NSPGD (docs/measurements.md §2) for the pairs ``(x0[k], target[k])`` with source classes
    ``source_class[k]``.

    ``x0`` and ``target``: float images ``[n, C, H, W]`` in [0, 1] pixel space (``target`` is cast
    to ``x0``'s dtype); ``source_class``: integer classes ``[n]`` (cast to int64 on ``x0``'s
    device); ``model`` maps images to logits ``[n, classes]``. Returns an :class:`NSPGDResult`.

    ``on_step(iteration, active)`` is called after every iteration with the number of pairs
    still walking. The attack is deterministic.

    Raises nothing of its own (the model's exceptions propagate); NaN/Inf gradient entries count
    as 0, and NaN/Inf logits are the caller's to check (docs/measurements.md §7).
    """
    n = x0.shape[0]
    x0 = x0.detach()
    target = target.detach().to(x0.dtype)
    c_all = source_class.to(device=x0.device, dtype=torch.long)
    record = {it: k for k, it in enumerate(cfg.record_at)}
    n_rec = len(cfg.record_at)
    path_points = x0.new_zeros((n, n_rec, *x0.shape[1:]))
    path_dirs = x0.new_zeros((n, n_rec, *x0.shape[1:]))
    path_valid = torch.zeros((n, n_rec), dtype=torch.bool, device=x0.device)
    x_final = x0.clone()
    accepted_steps = torch.zeros(n, dtype=torch.long, device=x0.device)
    pred_final = torch.empty(n, dtype=torch.long, device=x0.device)
    p_final = torch.empty(n, dtype=x0.dtype, device=x0.device)
    passes = 0

    # Iteration state. ``leaf``/``p_graph`` are the inputs and source confidences of the last
    # forward pass, with its graph; ``keep`` selects its rows that are still walking.
    leaf = x0.clone().requires_grad_(cfg.max_iter > 0)
    with torch.set_grad_enabled(cfg.max_iter > 0):
        p_graph, pred = _source_confidence(model, leaf, c_all)
    p_start = p_graph.detach().clone()
    idx = torch.arange(n, device=x0.device)
    keep = None  # None: every row of ``leaf``
    xa, c, t, p0 = x0, c_all, target, p_start
    pa, preda = p_start, pred

    for it in range(cfg.max_iter):
        (g,) = torch.autograd.grad(p_graph.sum(), leaf)
        passes += int(leaf.shape[0])
        if keep is not None:
            g = g[keep]
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        v = t - xa
        gv = _dot(g, v)
        gg = _dot(g, g)
        coef = torch.where(gv < 0, gv / gg.clamp_min(_TINY), torch.zeros_like(gv))
        v = v - g * per_example(coef, g)
        x_new = (xa + cfg.eta * v).clamp_(0.0, 1.0)
        slot = record.get(it)
        if slot is not None:
            step = x_new - xa
            snorm = step.flatten(1).norm(dim=1)
            path_points[idx, slot] = xa
            path_dirs[idx, slot] = step * per_example(torch.where(snorm > 0, 1 / snorm.clamp_min(_TINY), 0.0), step)
            path_valid[idx, slot] = True

        last = it == cfg.max_iter - 1
        leaf = x_new.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            p_graph, pred_new = _source_confidence(model, leaf, c)
        p_new = p_graph.detach()
        ok = (p0 - p_new) < cfg.delta
        n_ok = int(ok.sum())  # the one host synchronisation per iteration
        if n_ok < ok.shape[0]:
            # Refused pairs are finished where they stand.
            no = ~ok
            done = idx[no]
            x_final[done] = xa[no]
            pred_final[done] = preda[no]
            p_final[done] = pa[no]
        if n_ok == 0:
            # Every pair still walking was refused (and written above): nothing is left to write.
            idx, xa, pa, preda = idx[:0], xa[:0], pa[:0], preda[:0]
            break
        accepted_steps[idx[ok]] += 1
        if n_ok < ok.shape[0]:
            keep = ok
            idx, c, t, p0 = idx[ok], c[ok], t[ok], p0[ok]
            xa, pa, preda = x_new.detach()[ok], p_new[ok], pred_new[ok]
        else:
            keep = None
            xa, pa, preda = x_new.detach(), p_new, pred_new
        if on_step is not None:
            on_step(it + 1, int(idx.shape[0]))

    # Pairs that walked all K iterations end at their last accepted iterate.
    x_final[idx] = xa
    pred_final[idx] = preda
    p_final[idx] = pa
    remaining = (x_final - target).flatten(1).norm(dim=1)
    start = (x0 - target).flatten(1).norm(dim=1)
    closure = torch.where(start > 0, 1 - remaining / start.clamp_min(_TINY), torch.ones_like(start))
    return NSPGDResult(
        x_final=x_final,
        remaining_l2=remaining,
        closure=closure,
        still_source=pred_final == c_all,
        accepted_steps=accepted_steps,
        p_source_start=p_start,
        p_source_final=p_final,
        path_points=path_points,
        path_dirs=path_dirs,
        path_valid=path_valid,
        forward_backward_passes=passes,
    )
