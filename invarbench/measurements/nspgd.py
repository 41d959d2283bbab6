"""``nspgd``: NSPGD walks from correctly classified sources toward images of other classes, and
``nspgd_closure`` / ``nspgd_target_distance_l2`` (excessive invariance: Jacobsen et al., ICLR
2019; the walk: docs/measurements.md). Settings: :class:`NSPGDSettings`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from invarbench.attacks.nspgd import NSPGDConfig, nspgd
from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample, floats
from invarbench.measurements.images import image_strip_png
from invarbench.metrics.stats import MetricValue, mean_metric

CLOSURE = MetricSpec(
    name="nspgd_closure",
    label="NSPGD closure",
    unit="fraction of the source-to-target distance",
    better="lower",
    percent=False,
    aggregation="mean",
    interval="normal",
    group="invariance",
    reads="lower: less excessively invariant",
    upper=1.0,  # 1 - remaining / initial distance
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
    group="invariance",
    reads="higher: less excessively invariant",
    lower=0.0,
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


# The image strips: pictures of a few walks, stored with the run for the site (no metric reads them).
IMAGE_STRIPS = 4  # pairs drawn per run
STRIP_POINTS = 5  # walk panels before the end point: iterations 0, a/5, 2a/5, 3a/5, 4a/5 of a walk of a steps
_STRIP_SALT = 0x57219  # keeps the strips' draw apart from every other use of the suite seed


def strip_pairs(count: int, seed: int) -> np.ndarray:
    """The pairs (ascending) whose walks get an image strip: :data:`IMAGE_STRIPS` of pairs
    ``0..count-1`` (all when fewer), drawn without replacement by a partial Fisher-Yates shuffle
    driven by the raw 64-bit outputs of PCG64 seeded with ``SeedSequence([seed, salt])`` (exact across
    numpy versions). They depend on the suite's seed and the number of pairs only."""
    take = min(IMAGE_STRIPS, count)
    bits = np.random.PCG64(np.random.SeedSequence([seed, _STRIP_SALT]))
    order = list(range(count))
    for j in range(take):
        k = j + int(bits.random_raw()) % (count - j)
        order[j], order[k] = order[k], order[j]
    return np.sort(np.asarray(order[:take], dtype=np.int64))


STRIP_NAME = r"nspgd-strip-\d{5}\.(png|json)"  # every strip's artifact names (strip_name)


def strip_name(pair: int, ext: str) -> str:
    """The artifact name of pair ``pair``'s strip: ``nspgd-strip-00012.png`` (the picture) or ``.json``."""
    return f"nspgd-strip-{pair:05d}.{ext}"


def image_strip(
    ctx: BatchContext, cfg: NSPGDSettings, pair: int, source: int, target: int, accepted: int
) -> dict[str, bytes]:
    """Walk pair ``pair`` again on its own, recording :data:`STRIP_POINTS` evenly spaced iterates of
    its ``accepted`` steps, and draw the strip: source, those iterates, the end point, target (one
    PNG, :func:`invarbench.measurements.images.image_strip_png`), with a JSON that gives, per panel,
    its label, iteration, the model's source-class confidence (softmax probability), its predicted
    class and the L2 distance left to the target. Deterministic: the walk has no randomness. The
    pair walks alone here, and float kernels can differ between a batch and one image, so the
    strip's end point can differ from the stored pair's in the last digits (its numbers are its
    own walk's, consistent with its pictures)."""
    data = ctx.data
    x0 = data.x[source : source + 1].to(ctx.device)
    xt = data.x[target : target + 1].to(ctx.device)
    c = data.y[source : source + 1].to(ctx.device)
    iters = sorted({(accepted * j) // STRIP_POINTS for j in range(STRIP_POINTS)})
    res = nspgd(ctx.model, x0, c, xt, dataclasses.replace(cfg, record_at=tuple(iters)))
    panels = [x0[0]]
    labels = [("source", 0)]
    for slot, it in enumerate(iters):
        if it > 0 and bool(res.path_valid[0, slot]):
            panels.append(res.path_points[0, slot])
            labels.append((f"step {it}", it))
    end = int(res.accepted_steps[0])
    panels += [res.x_final[0], xt[0]]
    labels += [(f"end (step {end})", end), ("target", None)]
    images = torch.stack(panels)
    with torch.no_grad():
        probs = torch.softmax(ctx.model(images).double(), dim=1)
    p_source = probs[:, int(data.y[source])]
    distance = (images - xt).flatten(1).double().norm(dim=1)
    png = strip_name(pair, "png")
    doc = {
        "pair": pair,
        "source": source,
        "target": target,
        "source_label": int(data.y[source]),
        "target_label": int(data.y[target]),
        "accepted_steps": end,
        "image": png,
        "panels": [
            {
                "label": label,
                "iteration": it,
                "p_source": p,
                "predicted": pred,
                "distance_to_target_l2": d,
            }
            for (label, it), p, pred, d in zip(labels, floats(p_source), probs.argmax(dim=1).tolist(), floats(distance))
        ],
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
    return {png: image_strip_png(images), strip_name(pair, "json"): text.encode()}


def measure(ctx: BatchContext, cfg: NSPGDSettings) -> BatchOutput:
    """Walk the batch's pairs. Pairs whose path widths the suite measures record their path points
    (``extra["width_group"]``: their rows, source classes and :class:`NSPGDResult`, for ``path_width``).
    The walking pairs among :func:`strip_pairs` also get their image strips (``artifacts``), drawn
    after every number is computed, so they change none."""
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
    artifacts: dict[str, bytes] = {}
    if cfg.max_iter > 0:
        drawn = set(strip_pairs(min(cfg.pairs.num_pairs, len(data)), ctx.suite.seed).tolist())
        for r, (s, t) in enumerate(zip(plan.sources.tolist(), plan.targets.tolist())):
            if s in drawn and valid[r]:
                artifacts.update(image_strip(ctx, cfg, s, s, t, fields["accepted_steps"][r]))
    return BatchOutput(fields, extra, artifacts)


def aggregate(per_example: PerExample, cfg: NSPGDSettings, suite: object) -> list[MetricValue]:  # noqa: ARG001
    pairs = per_example["nspgd"]
    ok = [i for i, v in enumerate(pairs["valid"]) if v]
    return [
        mean_metric(CLOSURE.name, torch.tensor([pairs["closure"][i] for i in ok], dtype=torch.float64)),
        mean_metric(TARGET_DISTANCE.name, torch.tensor([pairs["remaining_l2"][i] for i in ok], dtype=torch.float64)),
    ]


def cost(cfg: NSPGDSettings, suite: object, start: int, stop: int) -> float:  # noqa: ARG001
    """Per pair whose source lies in ``start:stop``: its ``max_iter`` steps."""
    return max(0, min(stop, cfg.pairs.num_pairs) - start) * cfg.max_iter


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
    cost=cost,
    artifacts=(STRIP_NAME,),
    docs=("measurements.md", "2. NSPGD"),
    data_fields=frozenset({"pair", "source", "target", "source_label", "target_label"}),
    search=True,
)
