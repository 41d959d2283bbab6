"""Equi-confidence path widths (docs/measurements.md §3): the confidence tube around NSPGD path points.

The path widths are this project's protocol, building on NSPGD (§2) and on the excessive
invariance of Jacobsen et al. (2019; docs/measurements.md, References). Images are float tensors
in [0, 1] pixel space; radii and widths are L2 distances in that space.

For a path point ``x`` of source class ``c`` with step direction ``d``: draw ``M`` Gaussian
directions, remove from each its component along ``d``, normalise to unit L2; for every radius
``r`` the tube is ``q_lo(r), q_hi(r)`` = the ``q_lo``/``q_hi`` quantiles over the M directions of
``p_c(clip(x + r u_j, 0, 1))``. Quantiles use ``torch.quantile(..., interpolation="linear")``
(type 7 of Hyndman and Fan, 1996, numpy's default).

The scalar width of a point: with ``Q`` the piecewise-linear interpolation of the points
``(0, p_c(x)), (r_1, q_lo(r_1)), ..., (r_R, q_lo(r_R))`` and the threshold
``tau = width_fraction * p_c(x)``, the width is where ``Q`` first falls below ``tau``:
``sup{r in [0, r_R] : Q(s) >= tau for all s <= r}``. When ``Q`` never falls below ``tau`` the
width is ``r_R`` and is *censored* (the tube is at least that wide).

All ``points x directions x radii`` images are evaluated in ``torch.inference_mode`` batches of
at most ``max_batch_images`` images. Each point draws its directions with its own call to the
generator, in point order, so the numbers do not depend on the batch budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from invarbench.attacks._tensors import DIVISOR_FLOOR

_TINY = DIVISOR_FLOOR


@dataclass(frozen=True)
class PathWidthConfig:
    """Hyperparameters of the path widths (docs/measurements.md §3). ``directions``: M, random
    directions per point; ``radii``: increasing L2 radii in [0, 1] pixel space (the default is the
    CIFAR radii, for 3x32x32 inputs; the standard MNIST suites scale them by
    ``sqrt(784 / 3072)``); ``q_lo``/``q_hi``: the tube's quantiles; ``width_fraction``: the share
    of ``p_c(x)`` that ``q_lo`` must keep; ``max_batch_images``: images materialised at once
    (memory only: it changes no number).

    Raises ``ValueError`` unless the radii are increasing positive numbers, ``directions >= 1``,
    ``max_batch_images >= 1``, ``0 <= q_lo < q_hi <= 1`` and ``0 < width_fraction < 1``.
    """

    directions: int = 256
    radii: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
    q_lo: float = 0.05
    q_hi: float = 0.95
    width_fraction: float = 0.5
    max_batch_images: int = field(default=4096, metadata={"internal": True})  # memory only: not a suite setting

    def __post_init__(self) -> None:
        radii = tuple(float(r) for r in self.radii)
        if not radii or any(r <= 0 for r in radii) or any(b <= a for a, b in zip(radii, radii[1:])):
            raise ValueError(f"radii must be increasing positive numbers, got {self.radii}")
        if self.directions < 1 or self.max_batch_images < 1:
            raise ValueError("path widths need directions >= 1 and max_batch_images >= 1")
        if not 0 <= self.q_lo < self.q_hi <= 1:
            raise ValueError("path widths need 0 <= q_lo < q_hi <= 1")
        if not 0 < self.width_fraction < 1:
            raise ValueError("path widths need 0 < width_fraction < 1")
        object.__setattr__(self, "radii", radii)


@dataclass
class PathWidthResult:
    """Per point (``m`` points, ``R`` radii; dtype of the points): ``p0`` = p_c(x) (``[m]``), the
    tube ``q_lo``/``q_hi`` (``[m, R]`` probabilities), the scalar ``width`` (``[m]``, L2 in [0, 1]
    pixel space) and whether it is ``censored`` (bool ``[m]``: ``q_lo`` kept the threshold up to
    the largest radius)."""

    p0: torch.Tensor
    q_lo: torch.Tensor
    q_hi: torch.Tensor
    width: torch.Tensor
    censored: torch.Tensor


def width_from_tube(
    p0: torch.Tensor, q_lo: torch.Tensor, radii: torch.Tensor, fraction: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """The scalar width (and its censoring) of tubes ``q_lo [m, R]`` at ``radii [R]``; see the module doc.

    ``p0``: ``p_c(x)`` per point ``[m]``; ``q_lo``: the lower quantile per point and radius
    ``[m, R]``, same dtype; ``radii``: increasing L2 radii ``[R]`` (pixel space); ``fraction``: the
    width fraction in (0, 1). Returns ``(width, censored)``: ``width`` ``[m]`` in the units of
    ``radii`` (``radii[-1]`` where censored), ``censored`` bool ``[m]``. Pure, no checks of its own
    (docs/measurements.md §3).
    """
    m = p0.shape[0]
    tau = fraction * p0
    q = torch.cat([p0[:, None], q_lo], dim=1)  # [m, R + 1], r = 0 first
    r = torch.cat([radii.new_zeros(1), radii]).to(q.dtype)
    below = q < tau[:, None]
    censored = ~below.any(dim=1)
    k = below.to(torch.int8).argmax(dim=1).clamp_min(1)  # first radius below; >= 1 as q[:, 0] = p0 >= tau
    rows = torch.arange(m, device=p0.device)
    q_prev, q_next = q[rows, k - 1], q[rows, k]
    r_prev, r_next = r[k - 1], r[k]
    frac = ((q_prev - tau) / (q_prev - q_next).clamp_min(_TINY)).clamp(0.0, 1.0)
    width = torch.where(censored, r[-1].expand(m), r_prev + frac * (r_next - r_prev))
    return width, censored


def _directions(d: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` unit directions [count, D] orthogonal to ``d`` [D] (Gaussian, projected, normalised)."""
    u = torch.randn((count, d.numel()), generator=generator, device=d.device, dtype=d.dtype)
    dn = d.norm()
    # No host synchronisation: a zero ``d`` gives e = 0, and subtracting 0 leaves u exactly as it is.
    e = d / torch.where(dn > 0, dn, torch.ones_like(dn))
    u -= (u @ e)[:, None] * e[None, :]
    return u / u.norm(dim=1, keepdim=True).clamp_min(_TINY)


def _confidence(model: nn.Module, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(images), dim=1).gather(1, classes[:, None]).squeeze(1)


def path_widths(
    model: nn.Module,
    points: torch.Tensor,
    step_dirs: torch.Tensor,
    classes: torch.Tensor,
    cfg: PathWidthConfig,
    *,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> PathWidthResult:
    """Confidence tubes and widths (docs/measurements.md §3) at ``points [m, C, H, W]`` (float, in
    [0, 1] pixel space) with step directions ``step_dirs`` (``m`` tensors of the image's size,
    any length; only their direction matters; zero: no direction to remove) for source
    ``classes [m]`` (integers, cast to int64). ``model`` maps images to logits. Returns a
    :class:`PathWidthResult` in the points' dtype.

    ``generator`` (on ``points``' device) draws the directions. ``on_step(done, total)`` is
    called after every group of points evaluated together (``done`` of ``total`` points).

    Raises nothing of its own: the model's exceptions propagate, and torch raises
    ``RuntimeError`` when ``generator`` is on another device than ``points``.
    """
    m = points.shape[0]
    shape = points.shape[1:]
    dim = points[0].numel()
    dev, dtype = points.device, points.dtype
    n_dir, n_rad, budget = cfg.directions, len(cfg.radii), cfg.max_batch_images
    radii = torch.tensor(cfg.radii, device=dev, dtype=dtype)
    classes = classes.to(device=dev, dtype=torch.long)
    flat = points.detach().reshape(m, dim)
    dirs = step_dirs.detach().reshape(m, dim).to(dtype)
    conf = torch.empty((m, n_rad, n_dir), device=dev, dtype=dtype)
    p0 = torch.empty(m, device=dev, dtype=dtype)
    per_point = n_rad * n_dir

    with torch.inference_mode():
        for s in range(0, m, budget):
            p0[s : s + budget] = _confidence(model, points[s : s + budget].detach(), classes[s : s + budget])
        if per_point <= budget:
            group = budget // per_point
            for s in range(0, m, group):
                e = min(m, s + group)
                u = torch.stack([_directions(dirs[i], n_dir, generator) for i in range(s, e)])  # [g, M, D]
                images = torch.addcmul(flat[s:e, None, None, :], radii[None, :, None, None], u[:, None, :, :])
                images = images.clamp_(0.0, 1.0).view(-1, *shape)
                cls = classes[s:e].repeat_interleave(per_point)
                conf[s:e] = _confidence(model, images, cls).view(e - s, n_rad, n_dir)
                if on_step is not None:
                    on_step(e, m)
        else:  # one point's images exceed the budget: split its radii, then its directions
            for i in range(m):
                u = _directions(dirs[i], n_dir, generator)
                for r_i in range(n_rad):
                    for j in range(0, n_dir, budget):
                        k = min(n_dir, j + budget)
                        images = torch.add(flat[i], u[j:k], alpha=float(cfg.radii[r_i])).clamp_(0.0, 1.0)
                        cls = classes[i].expand(k - j)
                        conf[i, r_i, j:k] = _confidence(model, images.view(-1, *shape), cls)
                if on_step is not None:
                    on_step(i + 1, m)
        qs = torch.tensor([cfg.q_lo, cfg.q_hi], device=dev, dtype=dtype)
        tube = torch.quantile(conf, qs, dim=2, interpolation="linear")  # [2, m, R]
        q_lo, q_hi = tube[0], tube[1]
        width, censored = width_from_tube(p0, q_lo, radii, cfg.width_fraction)
    # Plain tensors (not inference tensors), so callers may use them anywhere.
    return PathWidthResult(
        p0=p0.clone(), q_lo=q_lo.clone(), q_hi=q_hi.clone(), width=width.clone(), censored=censored.clone()
    )
