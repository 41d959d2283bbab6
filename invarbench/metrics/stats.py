"""Summary statistics with uncertainty for per-example values."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class MetricValue:
    """One stored number: its stable ``name``, value, standard error and 95 % interval, over ``n``."""

    name: str
    value: float
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (well behaved at 0 and 1, unlike Wald)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion_metric(name: str, outcomes: torch.Tensor) -> MetricValue:
    """A proportion (accuracy) from per-example booleans: binomial standard error, Wilson 95 % CI."""
    n = int(outcomes.numel())
    k = int(outcomes.sum())
    p = k / n if n else math.nan
    stderr = math.sqrt(p * (1 - p) / n) if n else math.nan
    lo, hi = wilson_interval(k, n)
    return MetricValue(name=name, value=p, stderr=stderr, ci_low=lo, ci_high=hi, n=n)
