"""``pgd_linf`` and ``pgd_l2``: robust accuracy under PGD within the suite's budget (Madry et al.,
ICLR 2018; docs/measurements.md). Settings: :class:`invarbench.attacks.pgd.PGDConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from invarbench.attacks.pgd import Norm, PGDConfig, pgd_attack
from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample
from invarbench.metrics.stats import MetricValue, proportion_metric


@dataclass(frozen=True)
class PGDLinfSettings(PGDConfig):
    """PGD in an L∞ ball: ``eps``, ``steps``, ``step_size`` (None: ``2.5 eps / steps``), ``restarts``,
    ``random_start``; the norm is the measurement's."""

    norm: Norm = field(default="linf", kw_only=True, metadata={"internal": True})
    __pydantic_config__ = {"extra": "forbid"}


@dataclass(frozen=True)
class PGDL2Settings(PGDConfig):
    """PGD in an L2 ball; the fields of :class:`PGDLinfSettings`."""

    norm: Norm = field(default="l2", kw_only=True, metadata={"internal": True})
    __pydantic_config__ = {"extra": "forbid"}


def _measure(name: str):  # noqa: ANN202 - a measure function
    def measure(ctx: BatchContext, cfg: PGDConfig) -> BatchOutput:
        res = pgd_attack(
            ctx.model, ctx.x, ctx.y, cfg, generator=ctx.generator, on_step=ctx.stepper(name, cfg.steps * cfg.restarts)
        )
        return BatchOutput({"robust": res.robust.tolist(), "broken_at": res.broken_at.tolist()})

    return measure


def _aggregate(name: str, metric: str):  # noqa: ANN202 - an aggregate function
    def aggregate(per_example: PerExample, cfg: PGDConfig, suite: object) -> list[MetricValue]:  # noqa: ARG001
        return [proportion_metric(metric, torch.tensor(per_example[name]["robust"]))]

    return aggregate


_FIELDS = {
    "robust": "never misclassified at any iterate (random start included)",
    "broken_at": "restart * (steps + 1) + iterate of the first misclassified iterate; -1: misclassified "
    "clean; restarts * (steps + 1): robust",
}


def _build(name: str, metric: str, label: str, settings: type) -> Measurement:
    spec = MetricSpec(
        name=metric,
        label=f"Robust accuracy (PGD {label})",
        unit="share of examples",
        better="higher",
        percent=True,
        aggregation="proportion",
        interval="Wilson score",
        reads="higher: less sensitive",
        description=f"accuracy under PGD in an {label} ball of the suite's ε (random start, early exit)",
    )
    return Measurement(
        name=name,
        description=f"PGD {label}: robust accuracy within the suite's budget",
        settings=settings,
        measure=_measure(name),
        fields=_FIELDS,
        metrics=(spec,),
        aggregate=_aggregate(name, metric),
        summary=lambda cfg: f"ε = {cfg.eps:g}, {cfg.steps} steps",
    )


PGD_LINF = _build("pgd_linf", "robust_accuracy_linf", "L∞", PGDLinfSettings)
PGD_L2 = _build("pgd_l2", "robust_accuracy_l2", "L2", PGDL2Settings)
