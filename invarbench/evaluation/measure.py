"""The per-batch measurements of a suite and their aggregation: pure computation, no I/O.

The contract with the runner (which stores, resumes and reports progress):

- ``reliability_flags(model, data, suite, generator)`` runs once before the batches and returns
  the flags of the model (NaN/Inf logits raise instead);
- ``measure_batch(model, data, start, stop, suite, generator)`` returns, per measurement, the
  per-example (or per-pair) values of examples ``start:stop`` of ``data`` as JSON-ready lists.
  It depends only on its arguments, so a resumed run recomputes nothing and changes nothing;
- ``aggregate(per_example, suite)`` turns the concatenation of all batches' values into metrics.
"""

from __future__ import annotations

import torch
from torch import nn

from invarbench.attacks.pgd import PGDConfig, pgd_attack
from invarbench.data.registry import EvalData
from invarbench.metrics.stats import MetricValue, proportion_metric
from invarbench.models.wrapper import check_finite_logits
from invarbench.suites.schema import Suite

PerExample = dict[str, dict[str, list]]


def pgd_config(spec, norm: str = "linf") -> PGDConfig:  # noqa: ANN001 - a suite PGDSpec
    return PGDConfig(norm=norm, eps=spec.eps, steps=spec.steps, step_size=spec.step_size, restarts=spec.restarts)


def reliability_flags(model: nn.Module, data: EvalData, suite: Suite, generator: torch.Generator) -> list[str]:
    """Flags that make the model's numbers untrustworthy as they stand (see METHODS.md §4)."""
    return []


def measure_batch(
    model: nn.Module, data: EvalData, start: int, stop: int, suite: Suite, generator: torch.Generator
) -> PerExample:
    """Every per-example value the suite keeps for examples ``start:stop``, keyed by measurement."""
    device = next((b.device for b in model.buffers()), torch.device("cpu"))
    x = data.x[start:stop].to(device)
    y = data.y[start:stop].to(device)
    with torch.no_grad():
        logits = model(x)
    check_finite_logits(logits)
    correct = logits.argmax(dim=1) == y
    out: PerExample = {"clean": {"label": y.tolist(), "correct": correct.tolist()}}
    spec = suite.measurements.pgd_linf
    if spec is not None:
        with model.trusted_inputs():
            result = pgd_attack(model, x, y, pgd_config(spec), generator=generator)
        out["pgd_linf"] = {"robust": result.robust.tolist(), "broken_at": result.broken_at.tolist()}
    return out


def aggregate(per_example: PerExample, suite: Suite) -> list[MetricValue]:
    """The suite's metrics from the concatenated per-example values of all batches."""
    metrics = [proportion_metric("clean_accuracy", torch.tensor(per_example["clean"]["correct"]))]
    if "pgd_linf" in per_example:
        metrics.append(proportion_metric("robust_accuracy_linf", torch.tensor(per_example["pgd_linf"]["robust"])))
    return metrics
