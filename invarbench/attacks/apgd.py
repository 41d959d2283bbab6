"""APGD (Croce and Hein, ICML 2020): PGD with an automatic step-size schedule and momentum, with
the cross-entropy loss (APGD-CE) or the targeted DLR loss over the top-k other classes (APGD-T),
in L-inf and L2 balls, with per-example early exit.

The protocol, with every default, is docs/measurements.md §1.1; the paper is listed in full under
its References. Images are float tensors ``[n, C, H, W]`` in [0, 1] pixel space, and ``eps`` is
measured in that space (L-inf or L2).

Like :func:`invarbench.attacks.pgd.pgd_attack`, with the same loop (:mod:`invarbench.attacks.loop`)
and result type, an example is *broken* as soon as any iterate (the random start included) is
misclassified, and a broken example leaves the working batch at once. The state of a run's working
batch is an :class:`APGDState`.
Every quantity APGD keeps (step size, best point, momentum, the counts behind the step-size
checkpoints) is per example and the checkpoints are at fixed iterations, so early exit changes no
result for the examples that stay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.attacks._tensors import per_example
from invarbench.attacks.loop import AttackResult, Norm, Tally, check_norm, project

Loss = Literal["ce", "dlr_targeted"]
_DLR_FLOOR = 1e-12  # added to the DLR denominator, as in the paper's definition


@dataclass(frozen=True)
class APGDConfig:
    """Hyperparameters of one APGD attack (Croce and Hein, 2020; docs/measurements.md §1.1).

    ``norm``: ``"linf"`` or ``"l2"``; ``eps``: the radius of the ball around the clean image, in
    [0, 1] pixel space in that norm; ``steps``: iterations per run (the paper's N_iter, 100 in
    AutoAttack); ``restarts``: runs from random starts (per target for APGD-T); ``loss``:
    ``"ce"`` (APGD-CE: cross-entropy) or ``"dlr_targeted"`` (APGD-T: the targeted DLR loss, one
    run per target class); ``targets``:
    APGD-T's number of target classes, the ``targets`` most likely other classes at the clean
    image (9 in AutoAttack; capped at classes - 1); ``rho``: the share of loss increases between
    two checkpoints below which the step size is halved (0.75); ``early_exit``: let broken examples
    leave the batch (changes no result, only the cost).

    Raises ``ValueError`` for an unknown ``norm`` or ``loss``, ``eps < 0``, ``steps < 1``,
    ``restarts < 1``, ``targets < 1`` or ``rho`` outside (0, 1].
    """

    norm: Norm
    eps: float
    steps: int = 100
    restarts: int = 1
    loss: Loss = "ce"
    targets: int = 9
    rho: float = 0.75
    early_exit: bool = field(default=True, metadata={"internal": True})

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.loss not in ("ce", "dlr_targeted"):
            raise ValueError(f"loss must be 'ce' or 'dlr_targeted', got {self.loss!r}")
        if self.eps < 0 or self.steps < 1 or self.restarts < 1 or self.targets < 1:
            raise ValueError("APGD needs eps >= 0, steps >= 1, restarts >= 1 and targets >= 1")
        if not 0 < self.rho <= 1:
            raise ValueError(f"APGD needs 0 < rho <= 1, got {self.rho}")


def checkpoints(steps: int) -> list[int]:
    """The iterations after which APGD checks its step size (Croce and Hein, 2020, §3.2).

    The first after ``max(int(0.22 steps), 1)`` iterations; each interval is the previous one less
    ``max(int(0.03 steps), 1)``, but at least ``max(int(0.06 steps), 1)`` (the authors' integer
    version of the paper's ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``). For 100 steps:
    22, 41, 57, 70, 80, 87, 93, 99. Returns the iteration counts (1-based), increasing."""
    first, least, decrease = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, at, k = [], 0, first
    while at + k <= steps:
        at += k
        out.append(at)
        k = max(k - decrease, least)
    return out


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The targeted DLR loss ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` per example
    (Croce and Hein, 2020, eq. 7), ``z`` the logits ``[n, classes]`` (classes >= 4) sorted
    decreasingly as ``z_pi1 >= z_pi2 >= ...``; ``y``, ``target``: int64 ``[n]``. Returns ``[n]``. It
    is invariant to shifting and scaling the logits, so saturated softmax outputs do not stop it."""
    top = logits.topk(4, dim=1).values
    rows = torch.arange(logits.shape[0], device=logits.device)
    margin = logits[rows, y] - logits[rows, target]
    return -margin / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + _DLR_FLOOR)


def _normalize(v: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = v.flatten(1)
    size = flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)
    return v / per_example(size + _DLR_FLOOR, v)


def _direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / per_example(grad.flatten(1).norm(dim=1) + _DLR_FLOOR, grad)


@dataclass
class APGDState:
    """The working batch of one APGD run: per example, everything APGD keeps between iterations.

    ``m`` is the number of examples still in the batch; every field is filtered together
    (:meth:`select`) when examples leave it. Images are ``[m, C, H, W]`` with the dtype and device
    of the attacked ``x``, in [0, 1] pixel space; losses are ``[m]`` in the logits' dtype (APGD-CE:
    the cross-entropy in nats; APGD-T: the targeted DLR loss, unitless).

    ``idx``: int64 ``[m]``, the rows of ``x``. ``x0``: the clean images. ``y0``: int64 ``[m]``, the
    labels. ``xa``: the current iterate ``x_k``; ``x_prev``: the previous one ``x_{k-1}`` (the
    momentum term). ``grad``: the loss gradient at the last iterate a gradient was taken at,
    ``[m, C, H, W]`` (NaN/Inf entries as 0). ``eta``: ``[m]`` in ``x``'s dtype, the step size in
    pixel units of the norm (``2 eps`` at the start, halved at checkpoints). ``x_best``,
    ``grad_best``: the highest-loss iterate and its gradient; ``loss_best``: its loss;
    ``loss_prev``: the loss of the previous iterate; ``loss_best_at_check``: ``loss_best`` at the
    last checkpoint. ``reduced_at_check``: bool ``[m]``, the step size was halved at the last
    checkpoint (True at the start). ``rises``: int64 ``[m]``, iterations since the last checkpoint
    whose loss rose. ``t0``: int64 ``[m]``, APGD-T's target classes, ``None`` for APGD-CE.
    """

    idx: torch.Tensor
    x0: torch.Tensor
    y0: torch.Tensor
    xa: torch.Tensor
    x_prev: torch.Tensor
    grad: torch.Tensor
    eta: torch.Tensor
    x_best: torch.Tensor
    grad_best: torch.Tensor
    loss_best: torch.Tensor
    loss_prev: torch.Tensor
    loss_best_at_check: torch.Tensor
    reduced_at_check: torch.Tensor
    rises: torch.Tensor
    t0: torch.Tensor | None

    @classmethod
    def start(
        cls,
        idx: torch.Tensor,
        x0: torch.Tensor,
        y0: torch.Tensor,
        t0: torch.Tensor | None,
        xa: torch.Tensor,
        loss: torch.Tensor,
        grad: torch.Tensor,
        eps: float,
    ) -> APGDState:
        """The state at the random start ``xa`` with its ``loss [m]`` and ``grad [m, C, H, W]``."""
        m = idx.shape[0]
        return cls(
            idx=idx,
            x0=x0,
            y0=y0,
            xa=xa,
            x_prev=xa.clone(),
            grad=grad,
            eta=torch.full((m,), 2.0 * eps, dtype=xa.dtype, device=xa.device),
            x_best=xa.clone(),
            grad_best=grad.clone(),
            loss_best=loss.clone(),
            loss_prev=loss.clone(),
            loss_best_at_check=loss.clone(),
            reduced_at_check=torch.ones(m, dtype=torch.bool, device=xa.device),
            rises=torch.zeros(m, dtype=torch.long, device=xa.device),
            t0=t0,
        )

    def select(self, keep: torch.Tensor) -> APGDState:
        """The state of the examples where ``keep`` (bool ``[m]``) is True."""
        kept = {f.name: getattr(self, f.name) for f in fields(self)}
        return APGDState(**{name: None if v is None else v[keep] for name, v in kept.items()})


def _loss(logits: torch.Tensor, y0: torch.Tensor, t0: torch.Tensor | None) -> torch.Tensor:
    """The per-example loss ``[m]``: cross-entropy (``t0`` None) or the targeted DLR loss."""
    if t0 is None:
        return F.cross_entropy(logits, y0, reduction="none")
    return dlr_targeted_loss(logits, y0, t0)


def _evaluate(
    model: nn.Module, xa: torch.Tensor, y0: torch.Tensor, t0: torch.Tensor | None, need_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits ``[m, classes]``, loss ``[m]`` and (with ``need_grad``) the loss gradient at ``xa``,
    NaN/Inf entries as 0, all detached; the gradient is None without ``need_grad``."""
    if not need_grad:
        with torch.no_grad():
            logits = model(xa)
            return logits, _loss(logits, y0, t0), None
    xa = xa.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xa)
        per = _loss(logits, y0, t0)
        (grad,) = torch.autograd.grad(per.sum(), xa)
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    return logits.detach(), per.detach(), grad


def apgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: APGDConfig,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> AttackResult:
    """Run APGD-CE or APGD-T (Croce and Hein, 2020; docs/measurements.md §1.1) on ``(x, y)``.

    ``x``: float images ``[n, C, H, W]`` in [0, 1] pixel space; ``y``: int64 labels ``[n]`` on
    ``x``'s device; ``model`` maps ``[n, C, H, W]`` to logits ``[n, classes]``; ``cfg.eps`` is in
    pixel units of ``cfg.norm``. Returns an :class:`~invarbench.attacks.loop.AttackResult`; every
    iterate stays in the ``eps`` ball around ``x`` and in [0, 1].

    Each run (APGD-CE: one per restart; APGD-T: one per target class and restart, the target
    classes in order of the clean logits, the most likely other class first) attacks the examples
    not broken yet: a random start on the sphere of radius ``eps`` (L-inf: ``eps`` times a uniform
    draw in [-1, 1]^d scaled to L-inf norm 1; L2: a Gaussian direction), clipped to the box; then
    ``steps`` iterations ``z = P(x_k + eta_k s(g_k))``, ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)
    (x_k - x_{k-1}))`` with ``a = 0.75`` (``1`` at the first step), ``s`` the sign (L-inf) or the
    L2-normalised gradient, ``P`` the projection onto the ball and the box, and the step size
    ``eta`` starting at ``2 eps``. At every checkpoint (:func:`checkpoints`) an example's step size
    is halved, and its iterate and gradient reset to its highest-loss point, when the loss rose in
    at most ``rho`` of the iterations since the last checkpoint, or when its step size was not
    halved at the last checkpoint and its best loss has not improved since.

    Randomness (the random starts) comes only from ``generator``, which must live on ``x``'s
    device. ``on_step(step, active)`` is called after every iteration with the number of examples
    still in the working batch (``step`` counts over runs, from 1).

    Raises ``ValueError`` when ``cfg.loss`` is ``"dlr_targeted"`` and the model has fewer than 4
    classes (the DLR loss needs the 4 largest logits). The model's exceptions propagate; NaN/Inf
    gradient entries count as 0; NaN/Inf logits are the runner's to report (docs/measurements.md §7).
    """
    x = x.detach()
    with torch.no_grad():
        clean_logits = model(x)
    classes = clean_logits.shape[1]
    targeted = cfg.loss == "dlr_targeted"
    if targeted and classes < 4:
        raise ValueError(f"APGD-T's targeted DLR loss needs at least 4 classes, the model has {classes}")
    ranks = range(1, min(cfg.targets, classes - 1) + 1) if targeted else [0]
    tally = Tally(x, y, clean_logits, iterates=len(ranks) * cfg.restarts * (cfg.steps + 1))
    order = clean_logits.argsort(dim=1, descending=True, stable=True) if targeted else None
    sched = set(checkpoints(cfg.steps))
    shrink = max(int(0.03 * cfg.steps), 1)
    least = max(int(0.06 * cfg.steps), 1)

    step_count = 0
    for run, idx in tally.runs(len(ranks) * cfg.restarts):
        rank = ranks[run // cfg.restarts]
        base = run * (cfg.steps + 1)
        x0, y0 = x[idx], y[idx]
        t0 = order[idx, rank] if order is not None else None
        if cfg.norm == "linf":
            start = 2 * torch.rand(x0.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
        else:
            start = torch.randn(x0.shape, generator=generator, device=x.device, dtype=x.dtype)
        xa = (x0 + cfg.eps * _normalize(start, cfg.norm)).clamp_(0.0, 1.0)
        alive = torch.ones(idx.shape[0], dtype=torch.bool, device=x.device)

        logits, loss, grad = _evaluate(model, xa, y0, t0, cfg.steps > 0)
        tally.passes += int(xa.shape[0])
        st = APGDState.start(idx, x0, y0, t0, xa, loss, grad, cfg.eps)
        k = max(int(0.22 * cfg.steps), 1)  # the length of the current interval between checkpoints
        for it in range(cfg.steps + 1):
            if it > 0:
                need_grad = it < cfg.steps
                logits, loss, grad = _evaluate(model, st.xa, st.y0, st.t0, need_grad)
                if need_grad:
                    tally.passes += int(st.xa.shape[0])
                    st.grad = grad
            n_first = tally.check(logits, st.y0, alive, st.idx, st.xa, at=base + it)
            if it > 0:
                # Bookkeeping of the iterate just evaluated: loss rises, the best point, checkpoints.
                st.rises += (loss > st.loss_prev).long()
                st.loss_prev = loss
                better = loss > st.loss_best
                st.x_best[better] = st.xa[better]
                st.grad_best[better] = st.grad[better]
                st.loss_best = torch.where(better, loss, st.loss_best)
                if it in sched and it < cfg.steps:
                    oscillating = st.rises <= k * cfg.rho
                    stalled = ~st.reduced_at_check & (st.loss_best_at_check >= st.loss_best)
                    reduce = oscillating | stalled
                    st.reduced_at_check = reduce
                    st.loss_best_at_check = st.loss_best.clone()
                    st.eta = torch.where(reduce, st.eta / 2, st.eta)
                    st.xa = torch.where(per_example(reduce, st.xa), st.x_best, st.xa)
                    st.grad = torch.where(per_example(reduce, st.grad), st.grad_best, st.grad)
                    st.rises = torch.zeros_like(st.rises)
                    k = max(k - shrink, least)
            if it == cfg.steps:
                break
            if cfg.early_exit and n_first:
                keep = alive
                if n_first == keep.shape[0]:
                    break
                st = st.select(keep)
                alive = alive[keep]
            # The step: a projected gradient step, then momentum over the last move.
            xa, x_prev = st.xa, st.x_prev
            a = 0.75 if it > 0 else 1.0
            z = xa + per_example(st.eta, xa) * _direction(st.grad, cfg.norm)
            z = project(z - st.x0, st.x0, cfg.norm, cfg.eps)
            st.x_prev = xa
            moved = xa + a * (z - xa) + (1 - a) * (xa - x_prev)
            st.xa = project(moved - st.x0, st.x0, cfg.norm, cfg.eps)
            step_count += 1
            if on_step is not None:
                on_step(step_count, int(st.xa.shape[0]))
        tally.finish(st.idx, alive, st.x_best)
    return tally.result()
