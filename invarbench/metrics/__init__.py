"""Metrics and their uncertainty: pure functions over per-example values."""

from invarbench.metrics.stats import MetricValue, proportion_metric

__all__ = ["MetricValue", "proportion_metric"]
