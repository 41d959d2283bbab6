"""The per-batch measurements of a suite and their aggregation: pure computation, no I/O."""

from __future__ import annotations

import torch
from torch import nn

from invarbench.attacks.pgd import PGDConfig, pgd_attack
from invarbench.metrics.stats import MetricValue, proportion_metric
from invarbench.models.wrapper import check_finite_logits
from invarbench.suites.schema import Suite


def pgd_config(spec) -> PGDConfig:  # noqa: ANN001 - a suite PGDSpec
    return PGDConfig(norm="linf", eps=spec.eps, steps=spec.steps, step_size=spec.step_size,
                     restarts=spec.restarts)


def measure_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, suite: Suite, generator: torch.Generator
) -> dict[str, dict[str, list]]:
    """Every per-example value the suite keeps for one batch, keyed by measurement."""
    with torch.no_grad():
        logits = model(x)
    check_finite_logits(logits)
    correct = logits.argmax(dim=1) == y
    out: dict[str, dict[str, list]] = {
        "clean": {"label": y.tolist(), "correct": correct.tolist()},
    }
    spec = suite.measurements.pgd_linf
    if spec is not None:
        with model.trusted_inputs() if hasattr(model, "trusted_inputs") else _null():
            result = pgd_attack(model, x, y, pgd_config(spec), generator=generator)
        out["pgd_linf"] = {"robust": result.robust.tolist(), "broken_at": result.broken_at.tolist()}
    return out


def aggregate(per_example: dict[str, dict[str, list]]) -> list[MetricValue]:
    """The suite's metrics from the concatenated per-example values of all batches."""
    metrics = [proportion_metric("clean_accuracy", torch.tensor(per_example["clean"]["correct"]))]
    if "pgd_linf" in per_example:
        metrics.append(proportion_metric("robust_accuracy_linf", torch.tensor(per_example["pgd_linf"]["robust"])))
    return metrics


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
