"""``path_width``: equi-confidence tube widths around NSPGD path points, and the ``path_width``
metric (docs/measurements.md). Settings: :class:`PathWidthSettings`. Needs ``nspgd``, whose walks
record the path points."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from invarbench.attacks.pathwidth import PathWidthConfig, path_widths
from invarbench.measurements.base import (
    BatchContext,
    BatchOutput,
    FigureData,
    Measurement,
    MetricSpec,
    PerExample,
    floats,
)
from invarbench.metrics.stats import MetricValue, mean_metric

PATH_WIDTH = MetricSpec(
    name="path_width",
    label="Path width",
    unit="L2 radius, [0, 1] pixel space",
    better=None,
    percent=False,
    aggregation="mean",
    interval="normal",
    group="invariance",
    reads="a wider tube: a smoother, more invariant model",
    lower=0.0,
    description="the radius of the tube of near-constant confidence around the NSPGD path, probed in random "
    "directions normal to it (mean over pairs of their mean over path points)",
)
_FIELDS = ("pair", "point_valid", "p0", "q_lo", "q_hi", "width", "censored", "mean_width")


@dataclass(frozen=True)
class PathWidthSettings(PathWidthConfig):
    """The tube (:class:`invarbench.attacks.pathwidth.PathWidthConfig`: ``directions``, ``radii``,
    ``q_lo``, ``q_hi``, ``width_fraction``), the NSPGD iterations whose iterates are path
    ``points`` (increasing, below nspgd's ``max_iter``), and ``max_pairs`` (the first N walking pairs;
    None: all)."""

    points: tuple[int, ...] = field(default=(), kw_only=True)
    max_pairs: int | None = field(default=None, kw_only=True)
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        super().__post_init__()
        points = tuple(int(p) for p in self.points)
        if not points or any(p < 0 for p in points) or any(b <= a for a, b in zip(points, points[1:])):
            raise ValueError(f"path_width needs points: increasing iteration numbers >= 0, got {list(self.points)}")
        if self.directions < 2:
            raise ValueError("path_width needs directions >= 2")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError("path_width needs max_pairs >= 1 (or null: all pairs)")
        object.__setattr__(self, "points", points)


def check(cfg: PathWidthSettings, settings: Mapping[str, Any]) -> None:
    """The path points are NSPGD iterates: each must be below nspgd's ``max_iter``."""
    late = [p for p in cfg.points if p >= settings["nspgd"].max_iter]
    if late:
        raise ValueError(f"path_width points {late} are not below nspgd max_iter {settings['nspgd'].max_iter}")


def measure(ctx: BatchContext, cfg: PathWidthSettings) -> BatchOutput:
    out: dict[str, list] = {k: [] for k in _FIELDS}
    group = ctx.results["nspgd"].extra.get("width_group")
    if group is None:
        return BatchOutput(out)
    pairs, classes, res = group
    valid = res.path_valid  # [n, P]; a walking pair's first point (x0) is always valid
    points = res.path_points[valid]
    dirs = res.path_dirs[valid]
    cls = classes.to(valid.device)[:, None].expand(valid.shape)[valid]
    on_step = None if ctx.note is None else (lambda done, total: ctx.note(f"path_width point {done}/{total}"))
    widths = path_widths(ctx.model, points, dirs, cls, cfg, generator=ctx.generator, on_step=on_step)
    n, p = valid.shape
    flat_idx = torch.full((n, p), -1, dtype=torch.long)
    flat_idx[valid.cpu()] = torch.arange(points.shape[0])
    p0, q_lo, q_hi = floats(widths.p0), floats(widths.q_lo), floats(widths.q_hi)
    width, censored = floats(widths.width), widths.censored.tolist()
    for k in range(n):
        idx = flat_idx[k].tolist()
        out["pair"].append(int(pairs[k]))
        out["point_valid"].append([i >= 0 for i in idx])
        for key, vals in (("p0", p0), ("q_lo", q_lo), ("q_hi", q_hi), ("width", width), ("censored", censored)):
            out[key].append([vals[i] if i >= 0 else None for i in idx])
        ws = [width[i] for i in idx if i >= 0]
        out["mean_width"].append(math.fsum(ws) / len(ws) if ws else None)
    return BatchOutput(out)


def aggregate(per_example: PerExample, cfg: PathWidthSettings, suite: object) -> list[MetricValue]:  # noqa: ARG001
    widths = [w for w in per_example["path_width"]["mean_width"] if w is not None]
    return [mean_metric(PATH_WIDTH.name, torch.tensor(widths, dtype=torch.float64))]


def cost(cfg: PathWidthSettings, suite: Any, start: int, stop: int) -> float:
    """Per pair whose source lies in ``start:stop`` (at most ``max_pairs`` of NSPGD's pairs): its forward
    passes, directions x radii per point (a forward pass counts 1/3)."""
    walk = suite.measurements.get("nspgd")
    if walk is None:
        return 0.0
    limit = walk.pairs.num_pairs if cfg.max_pairs is None else min(cfg.max_pairs, walk.pairs.num_pairs)
    wide = max(0, min(stop, limit) - start)
    radii = len(getattr(cfg, "radii", ())) or 1
    return wide * len(cfg.points) * cfg.directions * radii / 3


def figures(values: PerExample, settings: Mapping[str, Any], metrics: Mapping[str, float]) -> list[FigureData]:
    """The equi-confidence tube of the run's pairs, marking its ``path_width``."""
    pw = values.get("path_width")
    if not pw or not settings or not pw.get("pair"):
        return []
    fraction = float(settings.get("width_fraction", 0.5))
    data = {
        "radii": settings["radii"],
        "points": settings["points"],
        "q_lo": pw["q_lo"],
        "q_hi": pw["q_hi"],
        "p0": pw["p0"],
        "widths": pw.get("width"),
        "path_width": metrics.get("path_width"),
        "width_fraction": fraction,
    }
    caption = (
        "Read it left to right along the NSPGD walk toward an image of another class, and bottom to top away "
        "from the walk in random directions normal to it: bright cells keep the source-class confidence. The "
        "white line is the tube's edge, where the 5 % quantile of the confidence falls to "
        f"{fraction:g} × its value on the path (mean over the pairs); the "
        "dashed line is the model's path width, the mean of those widths over the points and pairs. A wider "
        "tube: a smoother, more invariant model; brightness is the confidence itself, not invariance."
    )
    return [FigureData("Equi-confidence tube", "tube", data, caption)]


PATH_WIDTH_MEASUREMENT = Measurement(
    name="path_width",
    description="equi-confidence tube widths at NSPGD path points",
    settings=PathWidthSettings,
    measure=measure,
    fields={
        "pair": "the NSPGD pair",
        "point_valid": "per point: the walk reached it",
        "p0": "per point: source-class confidence there",
        "q_lo": "per point, per radius: the q_lo quantile",
        "q_hi": "per point, per radius: the q_hi quantile",
        "width": "per point: the tube's width",
        "censored": "per point: q_lo kept the threshold up to the largest radius",
        "mean_width": "mean width over the pair's valid points",
    },
    metrics=(PATH_WIDTH,),
    aggregate=aggregate,
    requires=("nspgd",),
    check=check,
    per="pair",
    cost=cost,
    figures=figures,
    docs=("measurements.md", "3. Path widths"),
    search=True,
)
