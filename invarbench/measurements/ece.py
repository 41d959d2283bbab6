"""``ece``: the clean expected calibration error with equal-width confidence bins (Naeini et al.,
AAAI 2015; Guo et al., ICML 2017), from the ``clean`` values: no work per batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample
from invarbench.metrics.stats import MetricValue, ece_metric

ECE = MetricSpec(
    name="ece",
    label="ECE",
    unit="probability",
    better="lower",
    percent=False,
    aggregation="ece",
    interval="bootstrap percentile",
    group="calibration",
    reads="lower is better",
    lower=0.0,
    upper=1.0,
    description="clean expected calibration error: the bin-weighted mean absolute gap between accuracy and "
    "confidence over equal-width confidence bins",
)


@dataclass(frozen=True)
class ECESettings:
    """``bins``: the number of equal-width confidence bins on [0, 1]."""

    bins: int = 15
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError("ECE needs bins >= 1")


def measure(ctx: BatchContext, cfg: ECESettings) -> BatchOutput:  # noqa: ARG001 - computed from the clean values
    return BatchOutput({})


def aggregate(per_example: PerExample, cfg: ECESettings, suite) -> list[MetricValue]:
    clean = per_example["clean"]
    return [
        ece_metric(
            ECE.name,
            torch.tensor(clean["confidence"], dtype=torch.float64),
            torch.tensor(clean["correct"]),
            n_bins=cfg.bins,
            seed=suite.seed,
        )
    ]


ECE_MEASUREMENT = Measurement(
    name="ece",
    description="clean expected calibration error",
    settings=ECESettings,
    measure=measure,
    fields={},
    metrics=(ECE,),
    aggregate=aggregate,
    summary=lambda cfg: f"{cfg.bins} bins",
    docs=("measurements.md", "5. Clean accuracy and calibration"),
)
