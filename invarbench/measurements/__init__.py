"""The measurement registry: every measurement, its settings, per-example fields and metrics.

Each measurement is one module of this package (see :mod:`invarbench.measurements.base`); the
built-in ones register here, in the order a suite runs them and lists their metrics. A new
measurement is one module that builds a :class:`Measurement` and calls
``MEASUREMENTS.add(name, measurement)``, and one entry under ``measurements:`` in a suite file. A
module outside this package is loaded by :func:`load_plugins` (``$INVARBENCH_MEASUREMENTS`` or an
``invarbench.measurements`` entry point), so that ``invarbench eval`` can use it too.
"""

from __future__ import annotations

from invarbench.measurements.base import (
    BatchContext,
    BatchOutput,
    FigureData,
    Measurement,
    MetricSpec,
    PerExample,
    measurement_generators,
    suite_fields,
)
from invarbench.measurements.clean import CLEAN
from invarbench.measurements.ece import ECE_MEASUREMENT
from invarbench.measurements.human_invariance import HUMAN_INVARIANCE
from invarbench.measurements.min_norm import MIN_NORM
from invarbench.measurements.nspgd import NSPGD
from invarbench.measurements.path_width import PATH_WIDTH_MEASUREMENT
from invarbench.measurements.pgd import PGD_L2, PGD_LINF
from invarbench.metrics.stats import MetricValue
from invarbench.registry import PluginRoute, Registry

PLUGINS_ENV = "INVARBENCH_MEASUREMENTS"
ENTRY_POINT_GROUP = "invarbench.measurements"
MEASUREMENTS: Registry[Measurement] = Registry("measurement", PluginRoute(PLUGINS_ENV, ENTRY_POINT_GROUP))
for _m in (CLEAN, PGD_LINF, PGD_L2, MIN_NORM, NSPGD, PATH_WIDTH_MEASUREMENT, ECE_MEASUREMENT, HUMAN_INVARIANCE):
    MEASUREMENTS.add(_m.name, _m)

# Measured in every run whatever the suite lists (the clean pass the others start from).
ALWAYS = "clean"


def aggregate(per_example: PerExample, suite) -> list[MetricValue]:
    """The suite's metrics from the concatenated per-example values of all batches, in the order of
    the registry's measurements and their declared metrics (used by a run, and by the results checks
    that recompute a document's metrics). Raises ``RuntimeError`` when a measurement computes other
    metrics than it declares."""
    metrics: list[MetricValue] = []
    for m in MEASUREMENTS.in_order():
        if m.aggregate is None or (m.name != ALWAYS and m.name not in suite.measurements):
            continue
        values = m.aggregate(per_example, suite.measurements.get(m.name), suite)
        declared = [s.name for s in m.metrics]
        if [v.name for v in values] != declared:
            raise RuntimeError(f"measurement {m.name} computed {[v.name for v in values]}, declares {declared}")
        metrics.extend(values)
    return metrics


def result_flags(per_example: PerExample, suite) -> list[str]:
    """Flags read from a finished run's per-example values (each measurement's ``flags``)."""
    flags: list[str] = []
    for m in MEASUREMENTS.in_order():
        if m.flags is not None and m.name in suite.measurements:
            flags.extend(m.flags(per_example, suite))
    return flags


def load_plugins() -> None:
    """Import the measurements of one's own, once: the modules named (comma-separated) in
    ``$INVARBENCH_MEASUREMENTS`` and those that installed packages declare under the entry-point
    group ``invarbench.measurements``; each registers itself with ``MEASUREMENTS.add`` when imported.
    Reading the registry does it too; suites call it before they validate. Raises
    :class:`ValidationError` naming a module that cannot be imported."""
    MEASUREMENTS.load_plugins()


def flag_docs() -> dict[str, str]:
    """Every flag a run can carry, with what it means: the reliability checks' and the measurements'."""
    from invarbench.attacks.checks import FLAG_DOCS

    return {**FLAG_DOCS, **{k: v for m in MEASUREMENTS.in_order() for k, v in m.flag_docs.items()}}


def owner_of_artifact(name: str) -> Measurement | None:
    """The registered measurement whose declared ``artifacts`` match the file name ``name``, or None."""
    return next((m for m in MEASUREMENTS.in_order() if m.owns_artifact(name)), None)


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
    "FigureData",
    "Measurement",
    "MetricSpec",
    "PerExample",
    "flag_docs",
    "load_plugins",
    "measurement_generators",
    "metric_spec",
    "metric_specs",
    "owner_of_artifact",
    "suite_fields",
]
