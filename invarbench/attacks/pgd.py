"""PGD (Madry et al., 2018) with L-inf and L2 balls, random start, restarts and early exit.

The protocol, with every default, is docs/measurements.md §1.1; the paper is listed in full
under its References. Images are float tensors ``[n, C, H, W]`` in [0, 1] pixel space, and
``eps`` and the step size are measured in that space (L-inf or L2).

An example is *broken* as soon as any iterate (the random start included) is misclassified
(the bookkeeping, shared with APGD, is :class:`invarbench.attacks.loop.Tally`).
A broken example stays broken, so it leaves the working batch at once: the forward pass that
checks an iterate is the same pass whose gradient makes the next step, and every further
step only touches examples that are still robust. Early exit changes no result.

L-inf PGD with sign steps and projection often falls into an exact cycle of iterates. With
``cycle_detection``, each example's iterates within a restart get a cheap fingerprint (a fixed
weighted sum, in float64); when a new iterate's fingerprint equals one of the last
:data:`CYCLE_WINDOW` iterates', the two iterates are compared exactly, and only an exact repeat
ends the example's restart: every later iterate would repeat one already checked, none of which
was misclassified, so the example is robust for that restart. Iterates that merely come close
never stop an example, and cycle detection, like early exit, changes no ``robust`` or
``broken_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from invarbench.attacks._tensors import DIVISOR_FLOOR, per_example
from invarbench.attacks.loop import AttackResult, Norm, Tally, check_norm, project

CYCLE_WINDOW = 8  # cycle detection compares each new iterate with this many previous ones (periods <= 8)


@dataclass(frozen=True)
class PGDConfig:
    """Hyperparameters of one PGD attack (Madry et al., 2018; docs/measurements.md §1.1).

    ``norm``: ``"linf"`` or ``"l2"``; ``eps``: the radius of the ball around the clean image,
    in [0, 1] pixel space in that norm; ``steps``: gradient steps per restart; ``step_size``:
    the step length alpha in the same units (``None`` means the usual ``2.5 * eps / steps``, see
    :attr:`alpha`); ``restarts``: random starts, each of ``steps`` steps; ``random_start``:
    start at a random point of the ball (else at the clean image); ``cycle_detection`` (L-inf
    only): end an example's restart as robust once its iterate exactly repeats one of the last
    :data:`CYCLE_WINDOW` of that restart (changes no ``robust`` or ``broken_at``, only the cost; see
    the module docstring); ``early_exit``: let broken examples leave the batch (changes no result,
    only the cost).

    Raises ``ValueError`` for an unknown ``norm``, ``eps < 0``, ``steps < 0``, ``restarts < 1``,
    ``step_size <= 0``, or ``cycle_detection`` with ``norm="l2"``.
    """

    norm: Norm
    eps: float
    steps: int
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    cycle_detection: bool = False
    early_exit: bool = field(default=True, metadata={"internal": True})  # changes no result: not a suite setting

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.eps < 0 or self.steps < 0 or self.restarts < 1:
            raise ValueError("PGD needs eps >= 0, steps >= 0 and restarts >= 1")
        if self.step_size is not None and self.step_size <= 0:
            raise ValueError("PGD needs step_size > 0 (or None for 2.5 * eps / steps)")
        if self.cycle_detection and self.norm != "linf":
            raise ValueError("cycle_detection is for L-inf PGD only (L2 steps rarely repeat an iterate exactly)")

    @property
    def alpha(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return 2.5 * self.eps / self.steps if self.steps else 0.0


def _random_start(x: torch.Tensor, cfg: PGDConfig, gen: torch.Generator | None) -> torch.Tensor:
    if not cfg.random_start or cfg.eps == 0:
        return torch.zeros_like(x)
    if cfg.norm == "linf":
        u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * cfg.eps
    # L2: uniform in the ball: a Gaussian direction and radius eps * U^(1/d).
    g = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    d = x[0].numel()
    norms = g.flatten(1).norm(dim=1).clamp_min(DIVISOR_FLOOR)
    r = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=x.dtype).pow(1.0 / d) * cfg.eps
    return g * per_example(r / norms, x)


def _step(x_adv: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor, cfg: PGDConfig) -> torch.Tensor:
    # A NaN input gradient (a model that masks gradients badly) would turn the iterate into NaN;
    # treat it as no information (the reliability checks flag such models).
    grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
    if cfg.norm == "linf":
        delta = x_adv + cfg.alpha * grad.sign() - x0
    else:
        gnorm = grad.flatten(1).norm(dim=1).clamp_min(DIVISOR_FLOOR)
        delta = x_adv - x0 + grad * per_example(cfg.alpha / gnorm, x0)
    return project(delta, x0, cfg.norm, cfg.eps)


def _fingerprint(x: torch.Tensor) -> torch.Tensor:
    """A cheap per-example fingerprint ``[n]`` (float64) of iterates ``[n, ...]``: equal iterates have
    equal fingerprints; equal fingerprints are only candidates, confirmed by an exact comparison."""
    flat = x.flatten(1).double()
    d = flat.shape[1]
    weights = 1.0 + torch.remainder(torch.arange(d, dtype=torch.float64, device=x.device) * 0.6180339887498949, 1.0)
    return (flat * weights).sum(dim=1)


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: PGDConfig,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> AttackResult:
    """Run PGD (Madry et al., 2018; docs/measurements.md §1.1) on the batch ``(x, y)``.

    ``x``: float images ``[n, C, H, W]`` in [0, 1] pixel space (float32 in the runs); ``y``:
    int64 labels ``[n]`` on ``x``'s device; ``model`` maps ``[n, C, H, W]`` to logits
    ``[n, classes]``; ``cfg.eps`` and the step size are in pixel units of ``cfg.norm``. Returns a
    :class:`~invarbench.attacks.loop.AttackResult`; every iterate stays in the ``eps`` ball around ``x`` and in [0, 1].

    The loss is the summed cross-entropy, so every example's gradient is its own. Randomness
    (the random start) comes only from ``generator``, which must live on ``x``'s device.
    ``on_step(step, active)`` is called after every gradient step with the number of examples
    still in the working batch (``step`` counts over restarts, from 1).

    With ``cfg.early_exit`` a broken example leaves the batch at once; without it every
    example runs every step (the results are the same; only the cost differs). With
    ``cfg.cycle_detection`` an example whose iterate exactly repeats an earlier one of the same
    restart leaves the batch as robust for that restart (again the same ``robust`` and
    ``broken_at``).

    Raises nothing of its own: the model's exceptions propagate, and torch raises
    ``RuntimeError`` when ``generator`` is on another device than ``x``. NaN/Inf gradient entries
    count as 0; NaN/Inf *logits* are not checked here (the runner's model wrapper counts them and
    the measurement raises ``ModelOutputError``, docs/measurements.md §7).
    """
    x = x.detach()
    with torch.no_grad():
        clean_logits = model(x)
    tally = Tally(x, y, clean_logits, iterates=cfg.restarts * (cfg.steps + 1))

    for restart, idx in tally.runs(cfg.restarts):  # idx: the examples still to attack
        x0, y0 = x[idx], y[idx]
        x_adv = (x0 + _random_start(x0, cfg, generator)).clamp_(0.0, 1.0)
        # Without early exit the batch keeps broken examples; ``alive`` marks the unbroken ones.
        alive = torch.ones(idx.shape[0], dtype=torch.bool, device=x.device)
        if cfg.cycle_detection:  # the last CYCLE_WINDOW iterates of this restart and their fingerprints
            window = min(CYCLE_WINDOW, cfg.steps + 1)
            ring = x_adv.new_empty((window, *x_adv.shape))
            ring_fp = torch.empty((window, x_adv.shape[0]), dtype=torch.float64, device=x.device)
            ring[0], ring_fp[0], filled = x_adv, _fingerprint(x_adv), 1
        for it in range(cfg.steps + 1):
            need_grad = it < cfg.steps
            if need_grad:
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    logits = model(x_adv)
                    loss = F.cross_entropy(logits, y0, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = x_adv.detach()
                tally.passes += int(x_adv.shape[0])
            else:  # the last iterate is only checked
                with torch.no_grad():
                    logits = model(x_adv)
            # the one host synchronisation per step
            n_first = tally.check(logits, y0, alive, idx, x_adv, at=restart * (cfg.steps + 1) + it)
            if not need_grad:
                break
            if cfg.early_exit and n_first:
                keep = alive
                if n_first == keep.shape[0]:
                    break
                idx, x0, y0, x_adv, grad, alive = idx[keep], x0[keep], y0[keep], x_adv[keep], grad[keep], alive[keep]
                if cfg.cycle_detection:
                    ring, ring_fp = ring[:, keep], ring_fp[:, keep]
            x_adv = _step(x_adv, x0, grad, cfg)
            if cfg.cycle_detection:
                fp = _fingerprint(x_adv)
                candidate = (ring_fp[:filled] == fp) & alive  # [filled, m]
                if bool(candidate.any()):
                    repeat = candidate & (ring[:filled] == x_adv).flatten(2).all(dim=2)
                    done = repeat.any(dim=0)
                    n_done = int(done.sum())
                    if n_done:  # an exact repeat: robust for this restart, no further step can change that
                        tally.finish(idx, done, x_adv)
                        keep = ~done
                        if n_done == keep.shape[0]:
                            idx = idx[keep]
                            break
                        idx, x0, y0, x_adv, alive = idx[keep], x0[keep], y0[keep], x_adv[keep], alive[keep]
                        ring, ring_fp, fp = ring[:, keep], ring_fp[:, keep], fp[keep]
                slot = (it + 1) % ring.shape[0]
                ring[slot], ring_fp[slot] = x_adv, fp
                filled = min(filled + 1, ring.shape[0])
            if on_step is not None:
                on_step(restart * cfg.steps + it + 1, int(x_adv.shape[0]))
        tally.finish(idx, alive, x_adv)
    return tally.result()
