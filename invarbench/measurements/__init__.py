"""The measurement registry: every measurement, its settings, per-example fields and metrics.

Each measurement is one module of this package (see :mod:`invarbench.measurements.base`); the
built-in ones register here, in the order a suite runs them and lists their metrics. A new
measurement is one module that builds a :class:`Measurement` and calls
``MEASUREMENTS.add(name, measurement)``, and one entry under ``measurements:`` in a suite file.
"""

from __future__ import annotations

from invarbench.measurements.base import (
    BatchContext,
    BatchOutput,
    Measurement,
    MetricSpec,
    PerExample,
    measurement_generators,
    suite_fields,
)
from invarbench.measurements.clean import CLEAN
from invarbench.measurements.ece import ECE_MEASUREMENT
from invarbench.measurements.min_norm import MIN_NORM
from invarbench.measurements.nspgd import NSPGD
from invarbench.measurements.path_width import PATH_WIDTH_MEASUREMENT
from invarbench.measurements.pgd import PGD_L2, PGD_LINF
from invarbench.registry import Registry

MEASUREMENTS: Registry[Measurement] = Registry("measurement")
for _m in (CLEAN, PGD_LINF, PGD_L2, MIN_NORM, NSPGD, PATH_WIDTH_MEASUREMENT, ECE_MEASUREMENT):
    MEASUREMENTS.add(_m.name, _m)


def metric_specs() -> list[MetricSpec]:
    """Every registered metric, in the order of the measurements and of their declarations."""
    return [spec for m in MEASUREMENTS.in_order() for spec in m.metrics]


def metric_spec(name: str) -> MetricSpec | None:
    """The spec of the metric ``name``, or None when no registered measurement declares it."""
    return next((s for s in metric_specs() if s.name == name), None)


__all__ = [
    "MEASUREMENTS",
    "BatchContext",
    "BatchOutput",
    "Measurement",
    "MetricSpec",
    "PerExample",
    "measurement_generators",
    "metric_spec",
    "metric_specs",
    "suite_fields",
]
