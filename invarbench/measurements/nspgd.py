"""``nspgd``: NSPGD walks from correctly classified sources toward images of other classes, and
``nspgd_closure`` / ``nspgd_target_distance_l2`` (excessive invariance: Jacobsen et al., ICLR
2019; the walk: docs/measurements.md). Settings: :class:`NSPGDSettings`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from invarbench.attacks.nspgd import NSPGDConfig, nspgd
from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample, floats
from invarbench.metrics.stats import MetricValue, mean_metric

CLOSURE = MetricSpec(
    name="nspgd_closure",
    label="NSPGD closure",
    unit="fraction of the source-to-target distance",
    better="lower",
    percent=False,
    aggregation="mean",
    interval="normal",
    reads="lower: less excessively invariant",
    description="NSPGD (null-space projected gradient descent): how far a walk from a source toward an image of "
    "another class gets while the source class keeps its confidence; 1 = it reached the target image "
    "(mean over walking pairs)",
)
TARGET_DISTANCE = MetricSpec(
    name="nspgd_target_distance_l2",
    label="NSPGD distance to target (L2)",
    unit="L2 distance, [0, 1] pixel space",
    better="higher",
    percent=False,
    aggregation="mean",
    interval="normal",
    reads="higher: less excessively invariant",
    description="the L2 distance to the target image left at the end of the walk (mean over walking pairs)",
)


@dataclass(frozen=True)
class PairRule:
    """How NSPGD's (source, target) pairs are chosen; they depend on the suite and data only.

    Sources are the first ``num_pairs`` examples of the evaluated data in published order.
    ``seeded_other_class``: each source's target is drawn uniformly from the examples whose label
    differs, with a generator seeded by (suite seed, source index); ``next_other_class``: the
    target is the next example (cyclically) whose label differs."""

    rule: Literal["seeded_other_class", "next_other_class"] = "seeded_other_class"
    num_pairs: int = 500
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        if self.rule not in ("seeded_other_class", "next_other_class"):
            raise ValueError(f"unknown pair rule {self.rule!r}: use seeded_other_class or next_other_class")
        if self.num_pairs < 1:
            raise ValueError("NSPGD needs num_pairs >= 1")


@dataclass(frozen=True)
class NSPGDSettings(NSPGDConfig):
    """The walk (:class:`invarbench.attacks.nspgd.NSPGDConfig`: ``eta``, ``delta``, ``max_iter``) and
    its ``pairs`` (:class:`PairRule`)."""

    pairs: PairRule = PairRule()
    __pydantic_config__ = {"extra": "forbid"}


@dataclass(frozen=True)
class PairPlan:
    """NSPGD's (source, target) pairs: pair ``k`` walks from example ``sources[k]`` to ``targets[k]``
    (-1 when every evaluated example has the source's class, so no target exists)."""

    sources: np.ndarray
    targets: np.ndarray


def pair_plan(
    labels: torch.Tensor | np.ndarray, pairs: PairRule, seed: int, *, start: int = 0, stop: int | None = None
) -> PairPlan:
    """The pairs whose source lies in ``start:stop`` (default: all), in pair order.

    ``seeded_other_class``: the target is the other-class example numbered by the first 64-bit
    output of PCG64 seeded with ``SeedSequence([seed, source])`` modulo their count (exact across
    numpy versions); ``next_other_class``: the next example of another class, wrapping around.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = int(y.shape[0])
    count = min(pairs.num_pairs, n)
    hi = count if stop is None else min(stop, count)
    sources = np.arange(min(start, hi), hi, dtype=np.int64)
    targets = np.full(sources.shape, -1, dtype=np.int64)
    for k, i in enumerate(sources):
        others = np.flatnonzero(y != y[i])
        if others.size == 0:
            continue
        if pairs.rule == "seeded_other_class":
            raw = np.random.PCG64(np.random.SeedSequence([seed, int(i)])).random_raw()
            targets[k] = others[int(raw) % others.size]
        else:
            after = others[others > i]
            targets[k] = after[0] if after.size else others[0]
    return PairPlan(sources=sources, targets=targets)


_WALK_FIELDS = (
    "initial_l2",
    "remaining_l2",
    "closure",
    "still_source",
    "accepted_steps",
    "p_source_start",
    "p_source_final",
)


def measure(ctx: BatchContext, cfg: NSPGDSettings) -> BatchOutput:
    """Walk the batch's pairs. Pairs whose path widths the suite measures record their path points
    (``extra["width_group"]``: their rows, source classes and :class:`NSPGDResult`, for ``path_width``)."""
    pw = ctx.suite.measurements.get("path_width")
    data, start = ctx.data, ctx.start
    plan = pair_plan(data.y, cfg.pairs, ctx.suite.seed, start=start, stop=ctx.stop)
    n = len(plan.sources)
    valid = np.array([bool(ctx.correct[s - start]) and t >= 0 for s, t in zip(plan.sources, plan.targets)], dtype=bool)
    fields: dict[str, list] = {
        "pair": plan.sources.tolist(),  # pair k has source k
        "source": plan.sources.tolist(),
        "target": plan.targets.tolist(),
        "source_label": data.y[plan.sources].tolist(),
        "target_label": [int(data.y[t]) if t >= 0 else None for t in plan.targets],
        "valid": valid.tolist(),
    }
    for key in _WALK_FIELDS:
        fields[key] = [None] * n
    extra: dict = {"width_group": None}
    wants_width = np.array(
        [pw is not None and (pw.max_pairs is None or s < pw.max_pairs) for s in plan.sources], dtype=bool
    )
    for group_width in (True, False):
        rows = np.flatnonzero(valid & (wants_width == group_width))
        if rows.size == 0:
            continue
        src = torch.as_tensor(plan.sources[rows])
        tgt = torch.as_tensor(plan.targets[rows])
        walk = dataclasses.replace(cfg, record_at=tuple(pw.points) if group_width else ())
        res = nspgd(
            ctx.model,
            data.x[src].to(ctx.device),
            data.y[src].to(ctx.device),
            data.x[tgt].to(ctx.device),
            walk,
            on_step=ctx.stepper("nspgd", cfg.max_iter, "iteration"),
        )
        initial = (data.x[src] - data.x[tgt]).flatten(1).double().norm(dim=1)
        values = {
            "initial_l2": floats(initial),
            "remaining_l2": floats(res.remaining_l2),
            "closure": floats(res.closure),
            "still_source": res.still_source.tolist(),
            "accepted_steps": res.accepted_steps.tolist(),
            "p_source_start": floats(res.p_source_start),
            "p_source_final": floats(res.p_source_final),
        }
        for key, vals in values.items():
            for r, v in zip(rows, vals):
                fields[key][r] = v
        if group_width:
            extra["width_group"] = (plan.sources[rows], data.y[src], res)
    return BatchOutput(fields, extra)


def aggregate(per_example: PerExample, cfg: NSPGDSettings, suite: object) -> list[MetricValue]:  # noqa: ARG001
    pairs = per_example["nspgd"]
    ok = [i for i, v in enumerate(pairs["valid"]) if v]
    return [
        mean_metric(CLOSURE.name, torch.tensor([pairs["closure"][i] for i in ok], dtype=torch.float64)),
        mean_metric(TARGET_DISTANCE.name, torch.tensor([pairs["remaining_l2"][i] for i in ok], dtype=torch.float64)),
    ]


NSPGD = Measurement(
    name="nspgd",
    description="NSPGD walks toward images of other classes that keep the source class's confidence",
    settings=NSPGDSettings,
    measure=measure,
    fields={
        "pair": "pair index (= its source)",
        "source": "source example",
        "target": "target example (-1: none)",
        "source_label": "label of the source",
        "target_label": "label of the target",
        "valid": "the model classifies the source correctly and a target exists: only valid pairs walk",
        "initial_l2": "L2 distance from source to target",
        "remaining_l2": "L2 distance left at the end",
        "closure": "1 - remaining_l2 / initial_l2",
        "still_source": "the end point is still the source class",
        "accepted_steps": "steps accepted",
        "p_source_start": "source-class confidence at the source",
        "p_source_final": "source-class confidence at the end (None for invalid pairs)",
    },
    metrics=(CLOSURE, TARGET_DISTANCE),
    aggregate=aggregate,
    per="pair",
)
