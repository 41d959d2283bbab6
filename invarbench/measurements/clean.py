"""``clean``: the model's predictions on the unperturbed images (always measured) and ``clean_accuracy``."""

from __future__ import annotations

import torch

from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample, floats
from invarbench.metrics.stats import MetricValue, proportion_metric

CLEAN_ACCURACY = MetricSpec(
    name="clean_accuracy",
    label="Clean accuracy",
    unit="share of examples",
    better="higher",
    percent=True,
    aggregation="proportion",
    interval="Wilson score",
    group="calibration",
    reads="higher is better",
    description="accuracy on the clean test images",
)


def measure(ctx: BatchContext, settings: None) -> BatchOutput:  # noqa: ARG001 - clean takes no settings
    confidence = torch.softmax(ctx.logits.double(), dim=1).max(dim=1).values
    return BatchOutput(
        {
            "label": ctx.y.tolist(),
            "pred": ctx.pred.tolist(),
            "correct": ctx.correct.tolist(),
            "confidence": floats(confidence),
        }
    )


def aggregate(per_example: PerExample, settings: None, suite: object) -> list[MetricValue]:  # noqa: ARG001
    return [proportion_metric(CLEAN_ACCURACY.name, torch.tensor(per_example["clean"]["correct"]))]


CLEAN = Measurement(
    name="clean",
    description="predictions on the clean images (always measured)",
    settings=None,
    measure=measure,
    fields={
        "label": "the example's label",
        "pred": "argmax of the clean logits",
        "correct": "pred == label",
        "confidence": "max softmax probability (float64)",
    },
    data_fields=frozenset({"label"}),
    metrics=(CLEAN_ACCURACY,),
    aggregate=aggregate,
)
