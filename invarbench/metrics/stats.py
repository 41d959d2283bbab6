"""Summary statistics with uncertainty for per-example values (docs/measurements.md §6).

Proportions get the Wilson score interval (Wilson, 1927), means the normal interval, medians and
ECE the bootstrap percentile interval (Efron and Tibshirani, 1993); the papers are listed in full
under the References of docs/measurements.md. Values are computed in float64 on the CPU; the
functions are pure (no I/O) and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class MetricValue:
    """One stored number: its stable ``name``, value, standard error and 95 % interval, over ``n``.

    ``value`` is in the metric's own units (a share in [0, 1], an L2 distance in [0, 1] pixel
    space, ...); ``stderr``, ``ci_low`` and ``ci_high`` are in the same units, ``None`` where the
    metric has none (e.g. a mean over fewer than 2 values) and NaN for an empty proportion.
    """

    name: str
    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


def format_number(value: float | None, digits: int = 4) -> str:
    """A metric's number as the tables show it: ``digits`` decimals, ``NaN`` for NaN and ``–`` for None."""
    if value is None:
        return "–"
    if math.isnan(value):
        return "NaN"
    return f"{value:.{digits}f}"


def format_interval(low: float | None, high: float | None, digits: int = 4) -> str:
    """A 95 % interval as the tables show it, ``[low, high]`` (each bound as :func:`format_number`
    writes it, so ``[NaN, NaN]`` for an empty proportion), or ``–`` where the metric has none."""
    if low is None or high is None:
        return "–"
    return f"[{format_number(low, digits)}, {format_number(high, digits)}]"


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (well behaved at 0 and 1, unlike Wald):
    ``successes`` of ``n`` trials, normal quantile ``z`` (1.96 for 95 %). Returns ``(low, high)`` in
    [0, 1]; NaN for ``n = 0``. At 0 successes the lower bound is exactly 0, at ``n`` the upper bound
    is exactly 1 (the formula's ``centre - half`` would leave a rounding residue such as 3.5e-18).
    Wilson, "Probable inference, the law of succession, and statistical inference", JASA 1927
    (docs/measurements.md §6, References).

    No checks of its own: ``0 <= successes <= n`` is the caller's to keep (outside it the result
    is meaningless, or ``math.sqrt`` raises ``ValueError``)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def proportion_metric(name: str, outcomes: torch.Tensor) -> MetricValue:
    """A proportion (accuracy) from per-example booleans: binomial standard error, Wilson 95 % CI.

    ``outcomes``: a bool (or 0/1) tensor of any shape, one entry per example. ``value = k / n``,
    ``stderr = sqrt(p (1 - p) / n)``, ``(ci_low, ci_high)`` = :func:`wilson_interval` (Wilson,
    1927; docs/measurements.md §6). An empty tensor gives NaN for all three. Raises nothing of its
    own.
    """
    n = int(outcomes.numel())
    k = int(outcomes.sum())
    p = k / n if n else math.nan
    stderr = math.sqrt(p * (1 - p) / n) if n else math.nan
    lo, hi = wilson_interval(k, n)
    return MetricValue(name=name, value=p, stderr=stderr, ci_low=lo, ci_high=hi, n=n)


# --- Means, medians and the bootstrap ---------------------------------------------------------

DEFAULT_RESAMPLES = 2000
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 22  # indices drawn at once (32 MiB of int64)


def median(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The sample median along ``dim``: the middle value, or the mean of the two middle values
    for an even count (``torch.median`` returns the lower one). ``inf`` values sort last and
    propagate; there must be no NaN.

    ``values``: a float tensor of any shape (e.g. ``[B, n]`` bootstrap replicates); returns the
    medians with ``dim`` removed, same dtype (docs/measurements.md §6). An empty ``dim`` raises
    ``IndexError``; NaN values sort last as well, giving no error but a meaningless result."""
    v = values.sort(dim=dim).values
    n = v.shape[dim]
    lo = v.narrow(dim, (n - 1) // 2, 1)
    hi = v.narrow(dim, n // 2, 1)
    return ((lo + hi) / 2).squeeze(dim) if n % 2 == 0 else lo.squeeze(dim)


def bootstrap(
    values: torch.Tensor | tuple[torch.Tensor, ...],
    statistic: Callable[..., torch.Tensor],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> torch.Tensor:
    """Bootstrap replicates of ``statistic`` (float64, on the CPU): the nonparametric bootstrap
    of Efron and Tibshirani (1993; docs/measurements.md §6, References).

    ``values`` is one tensor ``[n]`` or a tuple of aligned tensors ``[n]`` (resampled together;
    each is flattened and cast to float64 on the CPU); ``statistic`` maps resampled tensors
    ``[B, n]`` to ``[B]``. The resampling indices come from a CPU ``torch.Generator`` seeded with
    ``seed`` (``torch.randint(0, n, (B, n))``, drawn in chunks of rows for large ``n * B``), so
    the replicates are deterministic. Returns float64 ``[n_resamples]``; an empty tensor when
    ``n == 0`` or ``n_resamples < 1``. Raises nothing of its own (``statistic``'s exceptions
    propagate).
    """
    cols = (values,) if isinstance(values, torch.Tensor) else tuple(values)
    cols = tuple(c.detach().flatten().to("cpu", torch.float64) for c in cols)
    n = cols[0].numel()
    if n == 0 or n_resamples < 1:
        return torch.empty(0, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    out = []
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = torch.randint(0, n, (b, n), generator=gen)
        out.append(statistic(*(c[idx] for c in cols)).to(torch.float64))
    return torch.cat(out)


def _percentile_interval(replicates: torch.Tensor, level: float = 0.95) -> tuple[float, float]:
    """The bootstrap percentile interval, with order statistics rounded outward (no interpolation,
    so infinite replicates are handled)."""
    r = replicates.sort().values
    b = r.numel()
    tail = (1 - level) / 2
    lo = r[max(0, math.floor(tail * (b - 1)))]
    hi = r[min(b - 1, math.ceil((1 - tail) * (b - 1)))]
    return float(lo), float(hi)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def mean_metric(name: str, values: torch.Tensor) -> MetricValue:
    """A mean of per-example (or per-pair) values: standard error ``s / sqrt(n)`` (s with n - 1)
    and the normal 95 % interval ``mean +- 1.96 * stderr``; no interval when n < 2.

    ``values``: a float tensor of any shape (computed in float64 on the CPU); the result is in the
    values' units. An empty tensor gives value NaN and no standard error or interval
    (docs/measurements.md §6). Raises nothing of its own."""
    v = values.detach().flatten().to("cpu", torch.float64)
    n = int(v.numel())
    if n == 0:
        return MetricValue(name=name, value=math.nan, stderr=None, ci_low=None, ci_high=None, n=0)
    mean = float(v.mean())
    if n < 2:
        return MetricValue(name=name, value=mean, stderr=None, ci_low=None, ci_high=None, n=n)
    se = float(v.std(unbiased=True)) / math.sqrt(n)
    return MetricValue(name=name, value=mean, stderr=se, ci_low=mean - _Z95 * se, ci_high=mean + _Z95 * se, n=n)


def median_metric(
    name: str, values: torch.Tensor, *, seed: int = 0, n_resamples: int = DEFAULT_RESAMPLES
) -> MetricValue:
    """A median (``inf`` values allowed, e.g. "no adversarial example found"): the bootstrap
    standard error (std of the replicate medians; ``None`` when some are infinite) and the 95 %
    bootstrap percentile interval (bounds may be ``inf``).

    ``values``: a float tensor of any shape, no NaN (computed in float64 on the CPU); ``seed`` and
    ``n_resamples`` as in :func:`bootstrap`. The interval is the order statistics
    ``floor(0.025 (B - 1))`` and ``ceil(0.975 (B - 1))`` (0-based) of the sorted replicates
    (Efron and Tibshirani, 1993; docs/measurements.md §6). An empty tensor gives value NaN and no
    standard error or interval. Raises nothing of its own."""
    v = values.detach().flatten().to("cpu", torch.float64)
    n = int(v.numel())
    if n == 0:
        return MetricValue(name=name, value=math.nan, stderr=None, ci_low=None, ci_high=None, n=0)
    reps = bootstrap(v, median, n_resamples=n_resamples, seed=seed)
    lo, hi = _percentile_interval(reps)
    se = _finite_or_none(float(reps.std(unbiased=True))) if bool(torch.isfinite(reps).all()) else None
    return MetricValue(name=name, value=float(median(v)), stderr=se, ci_low=lo, ci_high=hi, n=n)


def ece_metric(
    name: str,
    confidence: torch.Tensor,
    correct: torch.Tensor,
    *,
    n_bins: int = 15,
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> MetricValue:
    """ECE (see :mod:`invarbench.metrics.calibration`) with a bootstrap standard error and 95 %
    percentile interval over examples.

    ``confidence``: top softmax probabilities in [0, 1], one per example (any shape, flattened);
    ``correct``: bool per example, aligned; the pairs are resampled together. ``n_bins``, ``seed``
    and ``n_resamples`` as in :func:`~invarbench.metrics.calibration.batched_ece` and
    :func:`bootstrap` (Naeini et al., 2015; Guo et al., 2017; Efron and Tibshirani, 1993;
    docs/measurements.md §5 and §6). An empty ``confidence`` gives value NaN and no standard error
    or interval. Raises ``ValueError`` for ``n_bins < 1``."""
    from invarbench.metrics.calibration import batched_ece, ece_from_confidence

    n = int(confidence.numel())
    if n == 0:
        return MetricValue(name=name, value=math.nan, stderr=None, ci_low=None, ci_high=None, n=0)
    value = ece_from_confidence(confidence, correct, n_bins)
    reps = bootstrap((confidence, correct), lambda c, k: batched_ece(c, k, n_bins), n_resamples=n_resamples, seed=seed)
    lo, hi = _percentile_interval(reps)
    return MetricValue(name=name, value=value, stderr=float(reps.std(unbiased=True)), ci_low=lo, ci_high=hi, n=n)
