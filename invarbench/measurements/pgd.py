"""``pgd_linf`` and ``pgd_l2``: robust accuracy within the suite's budget (docs/measurements.md §1.1).

PGD (Madry et al., ICLR 2018) runs on every example; when the suite gives ``apgd`` settings,
APGD-CE and then APGD-T (Croce and Hein, ICML 2020) run on the examples still robust, as
AutoAttack's cascade does, and an example is robust only if no attack broke it (the worst case per
example). Settings: :class:`invarbench.attacks.pgd.PGDConfig` plus :class:`APGDSettings`."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from invarbench.attacks.apgd import APGDConfig, apgd_attack
from invarbench.attacks.pgd import Norm, PGDConfig, pgd_attack
from invarbench.measurements.base import BatchContext, BatchOutput, Measurement, MetricSpec, PerExample
from invarbench.metrics.stats import MetricValue, proportion_metric


@dataclass(frozen=True)
class APGDSettings:
    """The APGD attacks that follow PGD on the examples it left robust (Croce and Hein, 2020): APGD-CE
    with ``restarts`` runs of ``steps`` iterations, then APGD-T with ``restarts`` runs of ``steps``
    iterations for each of the ``targets`` most likely other classes (AutoAttack: 100 steps, 1
    restart, 9 targets). The budget (norm and ε) is PGD's. Raises ``ValueError`` for ``steps < 1``,
    ``restarts < 1`` or ``targets < 1``."""

    steps: int = 100
    restarts: int = 1
    targets: int = 9
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1 or self.targets < 1:
            raise ValueError("APGD needs steps >= 1, restarts >= 1 and targets >= 1")


@dataclass(frozen=True)
class PGDLinfSettings(PGDConfig):
    """The L∞ cascade: PGD's ``eps``, ``steps``, ``step_size`` (None: ``2.5 eps / steps``),
    ``restarts``, ``random_start`` and ``cycle_detection`` (default on: changes no number, only the
    cost), and ``apgd`` (:class:`APGDSettings`; None: PGD alone); the norm is the measurement's."""

    norm: Norm = field(default="linf", kw_only=True, metadata={"internal": True})
    cycle_detection: bool = field(default=True, kw_only=True)
    apgd: APGDSettings | None = field(default=None, kw_only=True)
    __pydantic_config__ = {"extra": "forbid"}


@dataclass(frozen=True)
class PGDL2Settings(PGDConfig):
    """The L2 cascade; the fields of :class:`PGDLinfSettings` but ``cycle_detection`` (L∞ only)."""

    norm: Norm = field(default="l2", kw_only=True, metadata={"internal": True})
    cycle_detection: bool = field(default=False, kw_only=True, metadata={"internal": True})
    apgd: APGDSettings | None = field(default=None, kw_only=True)
    __pydantic_config__ = {"extra": "forbid"}


# The attacks of the cascade after PGD, in order, with their loss.
CASCADE = (("apgd_ce", "ce"), ("apgd_t", "dlr_targeted"))


def _measure(name: str):  # a measure function
    def measure(ctx: BatchContext, cfg: PGDLinfSettings | PGDL2Settings) -> BatchOutput:
        res = pgd_attack(
            ctx.model, ctx.x, ctx.y, cfg, generator=ctx.generator, on_step=ctx.stepper(name, cfg.steps * cfg.restarts)
        )
        if cfg.apgd is None:
            return BatchOutput({"robust": res.robust.tolist(), "broken_at": res.broken_at.tolist()})
        return BatchOutput(cascade(ctx, cfg, res.robust, res.broken_at, name))

    return measure


def cascade(
    ctx: BatchContext, cfg: PGDLinfSettings | PGDL2Settings, robust: torch.Tensor, broken_at: torch.Tensor, name: str
) -> dict[str, list]:
    """APGD-CE, then APGD-T, each on the examples no earlier attack broke (AutoAttack's order), after
    PGD's ``robust``/``broken_at`` (``[B]`` bool / int64). Returns the measurement's fields: the
    worst case ``robust``, PGD's ``broken_at``, ``broken_by`` and each APGD attack's ``broken_at``
    (None where it did not run on the example). APGD-T needs at least 4 classes; with fewer it does
    not run (its ``broken_at`` is None throughout)."""
    apgd = cfg.apgd
    robust = robust.clone()
    n = robust.shape[0]
    by: list[str | None] = [
        "clean" if b < 0 else ("pgd" if not r else None) for r, b in zip(robust.tolist(), broken_at.tolist())
    ]
    fields: dict[str, list] = {"broken_at": broken_at.tolist()}
    classes = ctx.logits.shape[1]
    for attack, loss in CASCADE:
        at: list[int | None] = [None] * n
        idx = torch.nonzero(robust).squeeze(1)
        if idx.numel() and (loss == "ce" or classes >= 4):
            acfg = APGDConfig(cfg.norm, cfg.eps, apgd.steps, apgd.restarts, loss, apgd.targets)
            runs = apgd.restarts * (min(apgd.targets, classes - 1) if loss != "ce" else 1)
            res = apgd_attack(
                ctx.model,
                ctx.x[idx],
                ctx.y[idx],
                acfg,
                generator=ctx.generator,
                on_step=ctx.stepper(f"{name} {attack}", apgd.steps * runs),
            )
            for i, b in zip(idx.tolist(), res.broken_at.tolist()):
                at[i] = b
            for i in idx[~res.robust].tolist():
                by[i] = attack
            robust[idx[~res.robust]] = False
        fields[f"{attack}_broken_at"] = at
    return {"robust": robust.tolist(), **fields, "broken_by": by}


def _aggregate(name: str, metric: str):  # an aggregate function
    def aggregate(per_example: PerExample, cfg: PGDConfig, suite: object) -> list[MetricValue]:  # noqa: ARG001
        return [proportion_metric(metric, torch.tensor(per_example[name]["robust"]))]

    return aggregate


_FIELDS = {
    "robust": "never misclassified at any iterate (random start included) of any attack of the cascade "
    "(PGD, then APGD-CE and APGD-T when the suite has apgd settings): the worst case per example",
    "broken_at": "PGD's: restart * (steps + 1) + iterate of the first misclassified iterate; -1: misclassified "
    "clean; restarts * (steps + 1): robust to PGD",
    "broken_by": "the attack that broke the example first: clean (misclassified clean), pgd, apgd_ce, apgd_t; "
    "null: robust (stored with the cascade only)",
    "apgd_ce_broken_at": "APGD-CE's: restart * (steps + 1) + iterate of the first misclassified iterate; "
    "restarts * (steps + 1): robust to it; null: not attacked (broken earlier)",
    "apgd_t_broken_at": "APGD-T's: (target * restarts + restart) * (steps + 1) + iterate, target 0 the most likely "
    "other class; runs * (steps + 1): robust to it; null: not attacked (broken earlier, or fewer than 4 classes)",
}


def _build(name: str, metric: str, label: str, settings: type) -> Measurement:
    spec = MetricSpec(
        name=metric,
        label=f"Robust accuracy ({label})",
        unit="share of examples",
        better="higher",
        percent=True,
        aggregation="proportion",
        interval="Wilson score",
        group="sensitivity",
        reads="higher: less sensitive",
        description=f"accuracy in an {label} ball of the suite's ε, the worst case per example over PGD, "
        "APGD-CE and APGD-T (AutoAttack's cascade; PGD alone in suite versions without apgd settings)",
    )
    return Measurement(
        name=name,
        description=f"{label} robust accuracy within the suite's budget: PGD, then APGD-CE and APGD-T",
        settings=settings,
        measure=_measure(name),
        fields=_FIELDS,
        metrics=(spec,),
        aggregate=_aggregate(name, metric),
        summary=_summary,
        cost=_cost,
        docs=("measurements.md", "1.1 PGD"),
    )


def _cost(cfg: PGDLinfSettings | PGDL2Settings, suite: object, start: int, stop: int) -> float:  # noqa: ARG001
    """PGD's steps on every example; APGD's an upper bound (it runs on the examples PGD left robust)."""
    n = stop - start
    cost = n * cfg.steps * cfg.restarts
    if cfg.apgd is not None:
        cost += n * cfg.apgd.steps * cfg.apgd.restarts * (1 + cfg.apgd.targets)
    return cost


def _summary(cfg: PGDLinfSettings | PGDL2Settings) -> str:
    text = f"ε = {cfg.eps:g}, {cfg.steps} steps"
    if cfg.apgd is not None:
        text += f"; APGD-CE, APGD-T ({cfg.apgd.targets} targets) {cfg.apgd.steps} steps"
    return text


PGD_LINF = _build("pgd_linf", "robust_accuracy_linf", "L∞", PGDLinfSettings)
PGD_L2 = _build("pgd_l2", "robust_accuracy_l2", "L2", PGDL2Settings)
