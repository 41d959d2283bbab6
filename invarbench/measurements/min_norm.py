"""``min_norm``: the minimal adversarial L2 distance per example and ``median_min_l2_distance``.

Per example the smaller of two upper bounds: FMN-L2 with a boundary bisection (Pintor et al.,
NeurIPS 2021) and a gradient-free boundary search along the segments toward the nearest
evaluated images of other classes (docs/measurements.md). When the search beats FMN on more than
``checks.search_beats_gradient_fraction`` of the correctly classified examples, the run is
flagged ``gradient_attack_weaker_than_search`` (gradient masking: Athalye et al., ICML 2018).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from invarbench.attacks.minnorm import MinNormConfig, boundary_search_l2, min_l2_distance
from invarbench.measurements.base import (
    BatchContext,
    BatchOutput,
    FigureData,
    Measurement,
    MetricSpec,
    PerExample,
    floats,
)
from invarbench.metrics.stats import MetricValue, median_metric

WEAKER_FLAG = "gradient_attack_weaker_than_search"

MEDIAN_MIN_L2 = MetricSpec(
    name="median_min_l2_distance",
    label="Median min. L2 distance",
    unit="L2 distance, [0, 1] pixel space",
    better="higher",
    percent=False,
    aggregation="median",
    interval="bootstrap percentile",
    group="sensitivity",
    reads="higher: less sensitive",
    lower=0.0,
    finite=False,  # +inf when neither FMN nor the boundary search found an adversarial example for most
    description="median smallest L2 perturbation found that flips the prediction: per example the smaller of "
    "FMN's and a gradient-free boundary search's; 0 for misclassified examples",
)


@dataclass(frozen=True)
class MinNormSettings(MinNormConfig):
    """FMN's settings (:class:`invarbench.attacks.minnorm.MinNormConfig`) and ``search_endpoints``:
    the nearest evaluated images of other classes whose segments the boundary search bisects (0:
    FMN alone)."""

    search_endpoints: int = 4
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.search_endpoints < 0:
            raise ValueError("the boundary search needs search_endpoints >= 0")


def nearest_other_class_endpoints(
    model: nn.Module,
    data,
    examples: torch.Tensor,
    k: int,
    device: torch.device,
) -> torch.Tensor:
    """For each of the ``examples`` (int64 indices into ``data``), the ``k`` nearest (L2) evaluated
    images of another class that the model does not classify as the example's class (in practice:
    the correctly classified ones), nearest first. Returns ``[len(examples), k]`` int64 indices into
    ``data`` (an EvalData); where fewer than ``k`` exist, the nearest found is repeated (an example
    with none gets its own index, whose segment has no length and no adversarial endpoint).

    Distances are computed pair by pair (no matrix-product shortcut), so an example's endpoints do
    not depend on the other examples of its batch; ties go to the lower index. The model's
    predictions are computed only for the images looked at, nearest first."""
    flat = data.x.flatten(1).to(device)
    labels = data.y.to(device)
    idx = examples.to(device)
    dist = torch.cdist(flat[idx].double(), flat.double(), compute_mode="donot_use_mm_for_euclid_dist")
    dist[labels[None, :] == labels[idx][:, None]] = math.inf
    order = torch.sort(dist, dim=1, stable=True).indices
    finite = torch.isfinite(torch.gather(dist, 1, order))
    n_all = flat.shape[0]
    pred = torch.full((n_all,), -1, dtype=torch.long, device=device)  # -1: not predicted yet
    chosen: list[list[int]] = [[] for _ in range(idx.shape[0])]
    width = 2 * k
    lo = 0
    while lo < n_all:
        need = [i for i in range(idx.shape[0]) if len(chosen[i]) < k]
        if not need:
            break
        hi = min(n_all, lo + width)
        window = order[need, lo:hi]
        todo = torch.unique(window[(pred[window] < 0) & finite[need, lo:hi]])
        for chunk in todo.split(max(1, int(examples.shape[0]))):
            with torch.no_grad():
                pred[chunk] = model(flat[chunk].view(-1, *data.x.shape[1:])).argmax(dim=1)
        for r, i in enumerate(need):
            cls = int(labels[idx[i]])
            for j, ok in zip(window[r].tolist(), finite[i, lo:hi].tolist()):
                if ok and int(pred[j]) != cls and len(chosen[i]) < k:
                    chosen[i].append(j)
        lo, width = hi, width * 2
    rows = [c + [c[0]] * (k - len(c)) if c else [int(idx[i])] * k for i, c in enumerate(chosen)]
    return torch.tensor(rows, dtype=torch.long)


def measure(ctx: BatchContext, cfg: MinNormSettings) -> BatchOutput:
    """FMN's distance, the boundary search's, and the smaller of the two with the method that gave it."""
    fmn = min_l2_distance(
        ctx.model, ctx.x, ctx.y, cfg, generator=ctx.generator, on_step=ctx.stepper("min_norm", cfg.steps)
    ).distance
    search = torch.full_like(fmn, math.inf)
    rows = torch.nonzero(ctx.correct).squeeze(1)
    if cfg.search_endpoints > 0 and rows.numel() > 0:
        if ctx.note is not None:
            ctx.note(f"min_norm boundary search ({int(rows.numel())} examples)")
        endpoints = nearest_other_class_endpoints(
            ctx.model, ctx.data, ctx.start + rows.cpu(), cfg.search_endpoints, ctx.device
        )
        res = boundary_search_l2(
            ctx.model, ctx.x[rows], ctx.y[rows], ctx.data.x[endpoints].to(ctx.device), refine_steps=cfg.refine_steps
        )
        search[rows] = res.distance
    distance = torch.where(ctx.correct, torch.minimum(fmn, search), torch.zeros_like(fmn))
    method = [
        "misclassified" if not c else "search" if s < f else "fmn" if math.isfinite(f) else "none"
        for c, f, s in zip(ctx.correct.tolist(), fmn.tolist(), search.tolist())
    ]
    return BatchOutput(
        {"distance": floats(distance), "fmn_distance": floats(fmn), "search_distance": floats(search), "method": method}
    )


def aggregate(per_example: PerExample, cfg: MinNormSettings, suite) -> list[MetricValue]:  # noqa: ARG001
    distance = torch.tensor(per_example["min_norm"]["distance"], dtype=torch.float64)
    return [median_metric(MEDIAN_MIN_L2.name, distance, seed=suite.seed)]


def flags(per_example: PerExample, suite) -> list[str]:
    """``gradient_attack_weaker_than_search`` when the boundary search beat FMN on more than
    ``suite.checks.search_beats_gradient_fraction`` of the correctly classified examples."""
    methods = per_example.get("min_norm", {}).get("method")
    if methods is None:
        return []
    correct = [m for m in methods if m != "misclassified"]
    beaten = sum(1 for m in correct if m == "search")
    if correct and beaten / len(correct) > suite.checks.search_beats_gradient_fraction:
        return [WEAKER_FLAG]
    return []


def figures(values: PerExample, settings: Mapping[str, Any], metrics: Mapping[str, float]) -> list[FigureData]:  # noqa: ARG001
    """The histogram of the per-example distances, marking the median the metric reports."""
    mn = values.get("min_norm")
    if not mn or not mn.get("distance"):
        return []
    caption = (
        "Per example, the smallest L2 perturbation found that changes the prediction. The grey bar at 0 counts "
        "the examples misclassified without any perturbation, which the metric counts as distance 0; the "
        "dashed line is the median over every example, the metric's median min. L2 distance."
    )
    data = {"distances": mn["distance"], "methods": mn.get("method")}
    return [FigureData("Minimal adversarial L2 distances", "distance_histogram", data, caption)]


MIN_NORM = Measurement(
    name="min_norm",
    description="minimal adversarial L2 distance: FMN and a gradient-free boundary search",
    settings=MinNormSettings,
    measure=measure,
    fields={
        "distance": "min(fmn_distance, search_distance); 0 when misclassified clean",
        "fmn_distance": "FMN's distance (inf: none found)",
        "search_distance": "the boundary search's distance (inf: none found or not searched)",
        "method": "which gave distance: fmn, search, misclassified or none",
    },
    metrics=(MEDIAN_MIN_L2,),
    aggregate=aggregate,
    flags=flags,
    flag_docs={
        WEAKER_FLAG: "a gradient-free boundary search found closer adversarial examples than the gradient attack FMN "
        "on more than 10 % of the correctly classified examples: a sign of gradient masking, so the gradient-based "
        "numbers (PGD robust accuracies) are likely too optimistic",
    },
    summary=lambda cfg: f"FMN {cfg.steps} steps or boundary search, {cfg.search_endpoints} endpoints",
    cost=lambda cfg, _suite, start, stop: (stop - start) * cfg.steps,
    figures=figures,
    docs=("measurements.md", "1.2 Minimal L2 distance"),
    search=True,
)
