"""Rendering the leaderboard from stored runs.

Templates receive typed context objects (:class:`LeaderboardRow`), never database records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

import invarbench
from invarbench.store.db import Store


@dataclass(frozen=True)
class MetricCell:
    value: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class LeaderboardRow:
    card_id: str
    name: str
    training: str
    suite: str
    run_id: int
    examples: int
    device: str
    finished: str
    flags: list[str]
    metrics: dict[str, MetricCell]


@dataclass(frozen=True)
class DatasetBoard:
    dataset: str
    rows: list[LeaderboardRow]
    columns: list[Column]


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    percent: bool  # a proportion shown as a percentage; otherwise a plain number


# Every stable metric name, in the order the leaderboard shows them. A board shows the columns
# for which at least one of its runs has a value.
COLUMNS = (
    Column("clean_accuracy", "Clean accuracy", True),
    Column("robust_accuracy_linf", "Robust accuracy (PGD L∞)", True),
    Column("robust_accuracy_l2", "Robust accuracy (PGD L2)", True),
    Column("median_min_l2_distance", "Median min. L2 distance", False),
    Column("nspgd_closure", "NSPGD closure", False),
    Column("nspgd_target_distance_l2", "NSPGD distance to target (L2)", False),
    Column("path_width", "Path width", False),
    Column("ece", "ECE", False),
)


def leaderboard(store: Store) -> list[DatasetBoard]:
    """One board per data set, rows ranked by robust accuracy, then clean accuracy."""
    boards: dict[str, list[LeaderboardRow]] = {}
    for run in store.latest_finished_runs():
        row = LeaderboardRow(
            card_id=run.model.card_id, name=run.model.name, training=run.model.training_method,
            suite=f"{run.suite_name} v{run.suite_version}", run_id=run.id, examples=run.examples_effective,
            device=run.device,
            finished=run.finished_at.strftime("%Y-%m-%d %H:%M") if run.finished_at else "",
            flags=list(run.flags or []),
            metrics={m.name: MetricCell(m.value, m.ci_low, m.ci_high) for m in run.metrics},
        )
        boards.setdefault(run.dataset, []).append(row)

    def rank(row: LeaderboardRow) -> tuple[float, float]:
        def get(name: str) -> float:
            cell = row.metrics.get(name)
            return cell.value if cell else float("-inf")

        return (-get("robust_accuracy_linf"), -get("clean_accuracy"))

    return [
        DatasetBoard(name, sorted(rows, key=rank), [c for c in COLUMNS if any(c.metric in r.metrics for r in rows)])
        for name, rows in sorted(boards.items())
    ]


def build_site(store: Store, out: Path) -> Path:
    """Write ``out/index.html``; return its path."""
    env = Environment(loader=PackageLoader("invarbench.site", "templates"), autoescape=select_autoescape())
    html = env.get_template("index.html").render(
        boards=leaderboard(store),
        version=invarbench.__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
