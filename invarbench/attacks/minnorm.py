"""The minimal adversarial L2 distance per example: FMN (Pintor et al., 2021) + a boundary search.

The protocol, with every default, is docs/measurements.md §1.2; the papers are listed in full
under its References. Images are float tensors ``[n, C, H, W]`` in [0, 1] pixel space; every
distance is an L2 norm in that space.

FMN-L2 runs normalised gradient descent on the logit margin ``f_y - max_{j != y} f_j`` inside
an L2 ball whose radius ``eps`` adapts every step: it shrinks by ``(1 - gamma)`` (and never
exceeds the smallest adversarial norm found) while the iterate is adversarial, grows by
``(1 + gamma)`` when it is not, and before any adversarial iterate has been found it jumps to the
linear estimate of the distance to the boundary, ``||delta|| + |margin| / ||grad||``, or to
``(1 + gamma)`` times its previous value if that is larger (our addition: where curvature or the
box make the linear estimate fall short, the original rule can stall just before the boundary
for the whole run). Step size
``alpha`` and ``gamma`` decay from their initial to their final values on a cosine schedule.

The smallest adversarial perturbation found is then shrunk along its own direction by a
bisection on ``s`` in ``x + s * delta`` (``s`` in [0, 1], forward passes only), which puts it on the
decision boundary to ``2^-refine_steps`` of its length. For a linear model FMN's first step
already lands on the nearest boundary, so the result is exact up to that resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from invarbench.attacks._tensors import DIVISOR_FLOOR, per_example

_TINY = DIVISOR_FLOOR


@dataclass(frozen=True)
class MinNormConfig:
    """Hyperparameters of the minimal-L2-distance measurement: FMN-L2 (Pintor et al., 2021) and
    the bisection onto the boundary (docs/measurements.md §1.2).

    ``method``: only ``"fmn"``; ``steps``: FMN steps; ``gamma`` / ``gamma_final``: the factor of
    the ``eps`` update, decaying on a cosine schedule; ``alpha_init`` / ``alpha_final``: the L2
    step length in [0, 1] pixel space, decaying likewise (``alpha_final=None``: ``alpha_init /
    100``, see :attr:`alpha_end`); ``refine_steps``: bisection steps on the segment from ``x`` to
    the best adversarial example.

    Raises ``ValueError`` for another ``method``, ``steps < 1``, ``refine_steps < 0``, unless
    ``0 < gamma_final <= gamma < 1``, or for a step size ``<= 0``.
    """

    method: Literal["fmn"] = "fmn"
    steps: int = 100
    gamma: float = 0.05  # initial factor of the eps update; decays to gamma_final
    gamma_final: float = 0.001
    alpha_init: float = 1.0  # initial L2 step size in [0, 1] pixel space
    alpha_final: float | None = None  # None: alpha_init / 100
    refine_steps: int = 20  # bisection steps on the segment from x to the best adversarial

    def __post_init__(self) -> None:
        if self.method != "fmn":
            raise ValueError(f"unknown minimum-norm method {self.method!r}: the only one is 'fmn'")
        if self.steps < 1 or self.refine_steps < 0:
            raise ValueError("FMN needs steps >= 1 and refine_steps >= 0")
        if not (0 < self.gamma < 1 and 0 < self.gamma_final <= self.gamma):
            raise ValueError("FMN needs 0 < gamma_final <= gamma < 1")
        if self.alpha_init <= 0 or (self.alpha_final is not None and self.alpha_final <= 0):
            raise ValueError("FMN needs positive step sizes")

    @property
    def alpha_end(self) -> float:
        return self.alpha_init / 100 if self.alpha_final is None else self.alpha_final


@dataclass
class MinNormResult:
    """Per example: ``distance`` (``[n]``, dtype of ``x``; L2 in [0, 1] pixel space; 0 when
    misclassified clean, ``inf`` when no adversarial example was found) and ``x_adv``
    (``[n, C, H, W]``, like ``x``: the adversarial example at that distance; the clean image where
    none was found or needed). ``forward_backward_passes`` (int) counts the example-level
    gradient computations."""

    distance: torch.Tensor
    x_adv: torch.Tensor
    forward_backward_passes: int


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``f_y - max_{j != y} f_j``: negative exactly when the prediction is not ``y`` (ties aside)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return true - other


def _cosine(start: float, end: float, i: int, steps: int) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * i / steps)) / 2


def min_l2_distance(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: MinNormConfig,
    *,
    generator: torch.Generator | None = None,  # noqa: ARG001 - FMN starts at x: no randomness
    on_step: Callable[[int, int], None] | None = None,
) -> MinNormResult:
    """The smallest L2 perturbation found that changes the prediction of each example of ``(x, y)``:
    FMN-L2 (Pintor et al., 2021, with the change of docs/measurements.md §1.2) and a bisection
    onto the decision boundary.

    ``x``: float images ``[n, C, H, W]`` in [0, 1] pixel space; ``y``: int64 labels ``[n]`` on
    ``x``'s device; ``model`` maps images to logits ``[n, classes]``. Returns a
    :class:`MinNormResult` whose distances are L2 norms in pixel space and upper bounds on the
    minimal adversarial distance (each is the norm of an adversarial example found, inside the box).

    An example counts as adversarial when ``argmax f(x') != y``. ``on_step(step, active)`` is
    called after every FMN step. ``generator`` is accepted for a uniform signature; FMN is
    deterministic.

    Raises nothing of its own (the model's exceptions propagate); NaN/Inf gradient entries count
    as 0, and NaN/Inf logits are the caller's to check (docs/measurements.md §7).
    """
    n = x.shape[0]
    x = x.detach()
    passes = 0
    with torch.no_grad():
        clean_wrong = model(x).argmax(dim=1) != y
    distance = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    distance[clean_wrong] = 0.0
    x_adv_out = x.clone()

    idx = torch.nonzero(~clean_wrong).squeeze(1)
    if idx.numel() == 0:
        return MinNormResult(distance=distance, x_adv=x_adv_out, forward_backward_passes=0)
    xs, ys = x[idx], y[idx]
    m = xs.shape[0]
    delta = torch.zeros_like(xs)
    eps = torch.zeros(m, dtype=x.dtype, device=x.device)
    # The largest L2 perturbation that stays in the box: no eps above it makes sense.
    worst = torch.maximum(xs, 1 - xs).flatten(1).norm(dim=1)
    best_norm = torch.full((m,), math.inf, dtype=x.dtype, device=x.device)
    best_delta = torch.zeros_like(xs)
    found = torch.zeros(m, dtype=torch.bool, device=x.device)

    for i in range(cfg.steps):
        alpha = _cosine(cfg.alpha_init, cfg.alpha_end, i, cfg.steps)
        gamma = _cosine(cfg.gamma, cfg.gamma_final, i, cfg.steps)
        xa = (xs + delta).requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa)
            margin = _margin(logits, ys)
            (grad,) = torch.autograd.grad(margin.sum(), xa)
        passes += m
        margin = margin.detach()
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        is_adv = logits.detach().argmax(dim=1) != ys
        dnorm = delta.flatten(1).norm(dim=1)
        better = is_adv & (dnorm < best_norm)
        best_norm = torch.where(better, dnorm, best_norm)
        best_delta = torch.where(per_example(better, xs), delta, best_delta)
        found |= is_adv
        gnorm = grad.flatten(1).norm(dim=1).clamp_min(_TINY)
        to_boundary = margin.abs() / gnorm  # first-order distance to the decision boundary
        eps = torch.where(
            is_adv,
            torch.minimum(eps * (1 - gamma), best_norm),
            torch.where(found, eps * (1 + gamma), torch.maximum(dnorm + to_boundary, eps * (1 + gamma))),
        )
        eps = torch.minimum(eps, worst)
        # Descend the margin: a step of length alpha, then project onto the eps ball and the box.
        delta = delta - grad * per_example(alpha / gnorm, xs)
        dn = delta.flatten(1).norm(dim=1).clamp_min(_TINY)
        delta = delta * per_example(torch.clamp(eps / dn, max=1.0), xs)
        delta = (xs + delta).clamp_(0.0, 1.0) - xs
        if on_step is not None:
            on_step(i + 1, m)

    # The last iterate has not been checked yet.
    with torch.no_grad():
        is_adv = model(xs + delta).argmax(dim=1) != ys
    dnorm = delta.flatten(1).norm(dim=1)
    better = is_adv & (dnorm < best_norm)
    best_norm = torch.where(better, dnorm, best_norm)
    best_delta = torch.where(per_example(better, xs), delta, best_delta)
    found |= is_adv

    # Bisection on the segment x -> x + best_delta (inside the box, as the box is convex):
    # ``hi`` is always adversarial, ``lo`` is not known to be.
    lo = torch.zeros(m, dtype=x.dtype, device=x.device)
    hi = torch.ones(m, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for _ in range(cfg.refine_steps):
            mid = (lo + hi) / 2
            adv = model(xs + best_delta * per_example(mid, xs)).argmax(dim=1) != ys
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
    final = best_delta * per_example(hi, xs)
    dist = torch.where(found, final.flatten(1).norm(dim=1), torch.full_like(best_norm, math.inf))
    distance[idx] = dist
    x_adv_out[idx] = torch.where(per_example(found, xs), xs + final, xs)
    return MinNormResult(distance=distance, x_adv=x_adv_out, forward_backward_passes=passes)


@dataclass
class BoundarySearchResult:
    """Per example: ``distance`` (``[n]``, dtype of ``x``; L2 in [0, 1] pixel space; ``inf`` when no
    endpoint was adversarial), ``x_adv`` (``[n, C, H, W]``: the adversarial point at that
    distance; the clean image where none), and ``endpoint`` (int64 ``[n]``: the index ``j`` of the
    endpoint whose segment gave it, -1 where none). ``forward_passes`` (int) counts the images
    evaluated."""

    distance: torch.Tensor
    x_adv: torch.Tensor
    endpoint: torch.Tensor
    forward_passes: int


def boundary_search_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    endpoints: torch.Tensor,
    *,
    refine_steps: int = 20,
) -> BoundarySearchResult:
    """A gradient-free upper bound on the minimal adversarial L2 distance: bisection onto the
    decision boundary along the segments from ``x[i]`` to the endpoints ``endpoints[i, j]``.

    ``x``: ``[n, C, H, W]`` float images in [0, 1]; ``y``: ``[n]`` int64 labels; ``endpoints``:
    ``[n, k, C, H, W]`` images of the same dtype (in practice the nearest evaluated images of other
    classes). A segment counts only when its endpoint is adversarial (``argmax f != y``); the
    bisection on ``s`` in [0, 1] starts from ``lo = 0``, ``hi = 1`` and keeps ``hi`` adversarial, so
    after ``refine_steps`` halvings the point ``x + hi (e - x)`` is adversarial and within
    ``2^-refine_steps`` of the segment's length of a boundary crossing that ``[lo, hi]`` brackets.
    Forward passes only: the bound holds whatever the model's gradients are (zero, masked, NaN),
    which is what makes it a check on the gradient attacks (Athalye et al., 2018; Croce and Hein,
    2020; docs/measurements.md §1.2 and §4, References). The distance is the smallest over the
    endpoints; an example already misclassified gets the distance of its best segment all the
    same (callers set those to 0). Deterministic; this search is the project's, not a published
    attack.

    Raises ``ValueError`` when ``endpoints`` is not ``[n, k, *x.shape[1:]]`` or ``refine_steps < 0``.
    """
    n, k = int(endpoints.shape[0]), int(endpoints.shape[1])
    if endpoints.shape[0] != x.shape[0] or tuple(endpoints.shape[2:]) != tuple(x.shape[1:]):
        raise ValueError(
            f"endpoints must be [n, k, *image] for x of shape {list(x.shape)}, got {list(endpoints.shape)}"
        )
    if refine_steps < 0:
        raise ValueError("the boundary search needs refine_steps >= 0")
    x = x.detach()
    distance = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    endpoint = torch.full((n,), -1, dtype=torch.long, device=x.device)
    x_adv = x.clone()
    if n == 0 or k == 0:
        return BoundarySearchResult(distance=distance, x_adv=x_adv, endpoint=endpoint, forward_passes=0)
    starts = x[:, None].expand_as(endpoints).reshape(n * k, *x.shape[1:])
    ends = endpoints.detach().to(x.dtype).reshape(n * k, *x.shape[1:])
    labels = y[:, None].expand(n, k).reshape(-1)
    seg = ends - starts
    with torch.no_grad():
        usable = model(ends).argmax(dim=1) != labels
        lo = torch.zeros(n * k, dtype=x.dtype, device=x.device)
        hi = torch.ones(n * k, dtype=x.dtype, device=x.device)
        for _ in range(refine_steps):
            mid = (lo + hi) / 2
            adv = model(starts + seg * per_example(mid, seg)).argmax(dim=1) != labels
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
    lengths = (seg * per_example(hi, seg)).flatten(1).norm(dim=1)
    lengths = torch.where(usable, lengths, torch.full_like(lengths, math.inf)).view(n, k)
    best, best_j = lengths.min(dim=1)
    found = torch.isfinite(best)
    distance = torch.where(found, best, distance)
    endpoint = torch.where(found, best_j, endpoint)
    rows = torch.arange(n, device=x.device) * k + best_j
    point = starts[rows] + seg[rows] * per_example(hi[rows], x)
    x_adv = torch.where(per_example(found, x), point, x_adv)
    return BoundarySearchResult(
        distance=distance, x_adv=x_adv, endpoint=endpoint, forward_passes=n * k * (refine_steps + 1)
    )
