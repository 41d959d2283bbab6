"""Metrics and their uncertainty: pure functions over per-example values.

docs/measurements.md §5 (clean accuracy and ECE) and §6 (standard errors and intervals) state
the definitions; its References list the papers.
"""

from invarbench.metrics.calibration import (
    batched_ece,
    ece_from_confidence,
)
from invarbench.metrics.stats import (
    MetricValue,
    bootstrap,
    ece_metric,
    mean_metric,
    median,
    median_metric,
    proportion_metric,
)

__all__ = [
    "MetricValue",
    "batched_ece",
    "bootstrap",
    "ece_from_confidence",
    "ece_metric",
    "mean_metric",
    "median",
    "median_metric",
    "proportion_metric",
]
