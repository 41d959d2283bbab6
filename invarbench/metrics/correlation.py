"""Rank correlation across the models of a board, with a bootstrap interval over models.

A board asks whether two of its axes agree: is a more robust model also one with wider
equi-confidence paths, does NSPGD closure rank models as the human-judged invariance metric does?
The answer is Spearman's rank correlation coefficient (Spearman, "The proof and measurement of
association between two things", American Journal of Psychology 15, 1904): Pearson's correlation of
the two columns' ranks, ties given their average rank. Its uncertainty comes from the models, not
from the examples: the nonparametric bootstrap of Efron and Tibshirani (1993) resamples *models*
with replacement (:func:`invarbench.metrics.stats.bootstrap`) and the interval is the percentile
interval of the replicates. Resamples in which either column is constant (every drawn model tied)
have no correlation and are left out; the result says how many were kept.

Pure functions over tensors, float64 on the CPU, deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from invarbench.errors import ValidationError
from invarbench.metrics.stats import bootstrap

# Fewer models than this: no coefficient is reported (two points always correlate at +-1).
MIN_MODELS = 3
# Fewer models than this: the coefficient without an interval. Resampling 3 or 4 models draws so few
# distinct sets (every draw of all 3 of 3 models is the same set) that the percentile interval collapses
# onto the coefficient, e.g. [+1.00, +1.00] from 3 models: certainty the data do not carry.
MIN_MODELS_FOR_INTERVAL = 5
DEFAULT_CORRELATION_RESAMPLES = 2000


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho of two per-model columns, with its 95 % bootstrap interval over models.

    ``rho`` is in [-1, 1] (NaN when fewer than :data:`MIN_MODELS` models or a constant column);
    ``ci_low``/``ci_high`` the percentile interval of the bootstrap replicates (NaN when no
    replicate had a correlation, or fewer than :data:`MIN_MODELS_FOR_INTERVAL` models); ``n`` the
    number of models; ``resamples_used`` of ``resamples`` replicates had both columns non-constant."""

    rho: float
    ci_low: float
    ci_high: float
    n: int
    resamples: int
    resamples_used: int


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n along the last dimension, ties given the mean of the ranks they span.

    ``x``: float ``[..., n]``. Returns float64 ``[..., n]`` (e.g. ``[3., 1., 3., 3.]`` gives
    ``[3., 1., 3., 3.]``: three tied values share ranks 2, 3, 4). NaN values are not allowed
    (the caller drops them)."""
    x = x.to(torch.float64)
    less = (x.unsqueeze(-2) < x.unsqueeze(-1)).sum(-1).to(torch.float64)
    equal = (x.unsqueeze(-2) == x.unsqueeze(-1)).sum(-1).to(torch.float64)
    return less + (equal + 1) / 2


def spearman_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman's rho of each row pair: ``x``, ``y`` float ``[B, n]`` -> float64 ``[B]``; NaN for a
    row where either column is constant (its ranks have no variance)."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx = rx - rx.mean(-1, keepdim=True)
    ry = ry - ry.mean(-1, keepdim=True)
    sxx, syy = (rx * rx).sum(-1), (ry * ry).sum(-1)
    sxy = (rx * ry).sum(-1)
    ok = (sxx > 0) & (syy > 0)
    rho = torch.full_like(sxy, math.nan)
    rho[ok] = (sxy[ok] / torch.sqrt(sxx[ok] * syy[ok])).clamp(-1.0, 1.0)
    return rho


def spearman(
    x: list[float] | torch.Tensor,
    y: list[float] | torch.Tensor,
    *,
    n_resamples: int = DEFAULT_CORRELATION_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> RankCorrelation:
    """Spearman's rank correlation of two aligned per-model columns, with a bootstrap interval.

    ``x``, ``y``: one value per model (float, ``[n]``, aligned; pairs where either is NaN or
    infinite are dropped first). Returns a :class:`RankCorrelation`; ``rho`` and the interval are
    NaN when fewer than :data:`MIN_MODELS` models remain, the interval alone when fewer than
    :data:`MIN_MODELS_FOR_INTERVAL`. Raises ``ValidationError`` when the columns
    differ in length.
    """
    xt = torch.as_tensor(x, dtype=torch.float64).flatten()
    yt = torch.as_tensor(y, dtype=torch.float64).flatten()
    if xt.numel() != yt.numel():
        raise ValidationError(f"rank correlation needs aligned columns, got {xt.numel()} and {yt.numel()} values")
    keep = torch.isfinite(xt) & torch.isfinite(yt)
    xt, yt = xt[keep], yt[keep]
    n = int(xt.numel())
    if n < MIN_MODELS:
        return RankCorrelation(math.nan, math.nan, math.nan, n, 0, 0)
    rho = float(spearman_rows(xt.unsqueeze(0), yt.unsqueeze(0))[0])
    if n < MIN_MODELS_FOR_INTERVAL:
        return RankCorrelation(rho, math.nan, math.nan, n, 0, 0)
    reps = bootstrap((xt, yt), spearman_rows, n_resamples=n_resamples, seed=seed)
    reps = reps[~torch.isnan(reps)]
    if reps.numel() == 0:
        return RankCorrelation(rho, math.nan, math.nan, n, n_resamples, 0)
    r = reps.sort().values
    b = r.numel()
    tail = (1 - level) / 2
    lo = float(r[max(0, math.floor(tail * (b - 1)))])
    hi = float(r[min(b - 1, math.ceil((1 - tail) * (b - 1)))])
    return RankCorrelation(rho, lo, hi, n, n_resamples, int(b))
