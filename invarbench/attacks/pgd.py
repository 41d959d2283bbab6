"""PGD (Madry et al., 2018) with L-inf and L2 balls, random start, restarts and early exit.

An example is *broken* as soon as any iterate (the random start included) is misclassified.
A broken example stays broken, so it leaves the working batch at once: the forward pass that
checks an iterate is the same pass whose gradient makes the next step, and every further
step only touches examples that are still robust. Early exit changes no result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["linf", "l2"]
_TINY = 1e-12


@dataclass(frozen=True)
class PGDConfig:
    """Hyperparameters of one PGD attack. ``step_size=None`` means the usual 2.5 * eps / steps."""

    norm: Norm
    eps: float
    steps: int
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    early_exit: bool = True

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.eps < 0 or self.steps < 0 or self.restarts < 1:
            raise ValueError("PGD needs eps >= 0, steps >= 0 and restarts >= 1")

    @property
    def alpha(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return 2.5 * self.eps / self.steps if self.steps else 0.0


@dataclass
class PGDResult:
    """Per example: ``robust`` (never broken), ``broken_at`` (restart * (steps + 1) + iterate index
    of the first misclassified iterate; -1 when misclassified clean; ``steps_total`` when robust),
    and ``x_adv`` (the first misclassified iterate, or the last iterate for robust examples)."""

    robust: torch.Tensor
    broken_at: torch.Tensor
    x_adv: torch.Tensor
    forward_backward_passes: int  # example-level count of gradient computations (cost accounting)


def _random_start(x: torch.Tensor, cfg: PGDConfig, gen: torch.Generator | None) -> torch.Tensor:
    if not cfg.random_start or cfg.eps == 0:
        return torch.zeros_like(x)
    if cfg.norm == "linf":
        u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * cfg.eps
    # L2: uniform in the ball: a Gaussian direction and radius eps * U^(1/d).
    g = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    d = x[0].numel()
    norms = g.flatten(1).norm(dim=1).clamp_min(_TINY)
    r = torch.rand(x.shape[0], generator=gen, device=x.device, dtype=x.dtype).pow(1.0 / d) * cfg.eps
    return g * (r / norms).view(-1, *([1] * (x.dim() - 1)))


def _step(x_adv: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor, cfg: PGDConfig) -> torch.Tensor:
    shape = (-1, *([1] * (x0.dim() - 1)))
    if cfg.norm == "linf":
        delta = x_adv + cfg.alpha * grad.sign() - x0
        delta = delta.clamp(-cfg.eps, cfg.eps)
    else:
        gnorm = grad.flatten(1).norm(dim=1).clamp_min(_TINY).view(shape)
        delta = x_adv + cfg.alpha * grad / gnorm - x0
        dnorm = delta.flatten(1).norm(dim=1).view(shape)
        delta = delta * torch.clamp(cfg.eps / dnorm.clamp_min(_TINY), max=1.0)
    return (x0 + delta).clamp(0.0, 1.0)


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: PGDConfig,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> PGDResult:
    """Run PGD on the batch ``(x, y)`` (images in [0, 1]) against ``model`` (logits).

    ``on_step(step, active)`` is called after every step with the number of examples still in
    the working batch.
    """
    n = x.shape[0]
    x = x.detach()
    steps_total = cfg.restarts * (cfg.steps + 1)
    robust = torch.ones(n, dtype=torch.bool, device=x.device)
    broken_at = torch.full((n,), steps_total, dtype=torch.long, device=x.device)
    x_adv_out = x.clone()
    passes = 0

    with torch.no_grad():
        clean_wrong = model(x).argmax(dim=1) != y
    robust &= ~clean_wrong
    broken_at[clean_wrong] = -1

    for restart in range(cfg.restarts):
        idx = torch.nonzero(robust).squeeze(1)  # examples still to attack
        if idx.numel() == 0:
            break
        x0, y0 = x[idx], y[idx]
        x_adv = (x0 + _random_start(x0, cfg, generator)).clamp(0.0, 1.0)
        for it in range(cfg.steps + 1):
            x_adv.requires_grad_(True)
            with torch.enable_grad():
                logits = model(x_adv)
                wrong = logits.argmax(dim=1) != y0
                need_grad = it < cfg.steps
                if need_grad:
                    loss = F.cross_entropy(logits, y0, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x_adv)
                    passes += int(x_adv.shape[0])
            x_adv = x_adv.detach()
            first = wrong & robust[idx]  # without early exit, broken examples are still here
            if bool(first.any()):
                hit = idx[first]
                robust[hit] = False
                broken_at[hit] = restart * (cfg.steps + 1) + it
                x_adv_out[hit] = x_adv[first]
            if not need_grad:
                break
            if cfg.early_exit:
                keep = ~wrong
                if not bool(keep.any()):
                    break
                if not bool(keep.all()):
                    idx, x0, y0, x_adv, grad = idx[keep], x0[keep], y0[keep], x_adv[keep], grad[keep]
            x_adv = _step(x_adv, x0, grad, cfg)
            if on_step is not None:
                on_step(restart * cfg.steps + it + 1, int(x_adv.shape[0]))
        still = robust[idx]
        x_adv_out[idx[still]] = x_adv[still]
    return PGDResult(robust=robust, broken_at=broken_at, x_adv=x_adv_out, forward_backward_passes=passes)
