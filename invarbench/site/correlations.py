"""Do a board's axes agree? Rank correlations across its ranked models (docs/measurements.md).

Two questions, asked of every board that has the metrics:

- **Robustness against invariance** (the study's claim: adversarially trained models have wider
  equi-confidence paths): L∞ robust accuracy and the median minimal L2 distance, each against path
  width and against NSPGD closure.
- **Our invariance axis against human judgement**: the human-judged agreement on the invariance
  examples (where the board has it) against NSPGD closure and against path width.

Each is Spearman's rho with a bootstrap interval over models
(:func:`invarbench.metrics.correlation.spearman`), over all ranked models of the board and again
within each group of at least :data:`~invarbench.metrics.correlation.MIN_MODELS` models that share an
architecture (same name and keyword arguments), where training is the only difference. The numbers
are a result, not a target: they are shown whatever they say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from invarbench.metrics.correlation import MIN_MODELS, MIN_MODELS_FOR_INTERVAL, RankCorrelation, spearman

ROBUSTNESS = ("robust_accuracy_linf", "median_min_l2_distance")
INVARIANCE = ("path_width", "nspgd_closure")
HUMAN = "human_agreement_relabelled"

# (x, y): every pair a board is asked about, in the order shown.
PAIRS: tuple[tuple[str, str], ...] = (
    *((r, i) for r in ROBUSTNESS for i in INVARIANCE),
    *((HUMAN, i) for i in INVARIANCE),
)


@dataclass(frozen=True)
class ModelPoint:
    """One ranked model of a board: its card id, its architecture group (None: unknown, in no
    group) and its metric values by name (the metric's point value; NaN where it has none)."""

    card_id: str
    group: str | None
    values: Mapping[str, float]


@dataclass(frozen=True)
class BoardCorrelation:
    """Spearman's rho of metric ``x`` against metric ``y`` over the board's models (``group`` None)
    or over the models of one architecture group."""

    x: str
    y: str
    group: str | None
    result: RankCorrelation

    def text(self) -> str:
        """``ρ = 0.41 [-0.10, 0.80], 12 models``, or why there is no coefficient."""
        r = self.result
        if math.isnan(r.rho):
            return f"no coefficient ({r.n} models with both; needs {MIN_MODELS} with distinct values)"
        if math.isnan(r.ci_low) and r.n < MIN_MODELS_FOR_INTERVAL:
            return f"ρ = {r.rho:+.2f} (no interval: {r.n} models, needs {MIN_MODELS_FOR_INTERVAL}), {r.n} models"
        if math.isnan(r.ci_low):
            return f"ρ = {r.rho:+.2f} (no interval), {r.n} models"
        return f"ρ = {r.rho:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}], {r.n} models"


def _column(points: Sequence[ModelPoint], name: str) -> list[float]:
    return [float(p.values.get(name, math.nan)) for p in points]


def board_correlations(points: Sequence[ModelPoint], *, seed: int = 0) -> list[BoardCorrelation]:
    """Every pair of :data:`PAIRS` that at least one model has both metrics of: over all ``points``,
    then within each architecture group of at least ``MIN_MODELS`` models (groups by name). Returns
    the correlations in that order; deterministic for ``seed``."""
    out: list[BoardCorrelation] = []
    groups: dict[str, list[ModelPoint]] = {}
    for p in points:
        if p.group is not None:
            groups.setdefault(p.group, []).append(p)
    for x, y in PAIRS:
        if not any(x in p.values and y in p.values for p in points):
            continue
        out.append(BoardCorrelation(x, y, None, spearman(_column(points, x), _column(points, y), seed=seed)))
        for name in sorted(groups):
            members = groups[name]
            if len(members) >= MIN_MODELS:
                res = spearman(_column(members, x), _column(members, y), seed=seed)
                out.append(BoardCorrelation(x, y, name, res))
    return out
