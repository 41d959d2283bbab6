"""Rendering the leaderboard from stored runs.

Templates receive typed context objects (:class:`LeaderboardRow`), never database records.

Each data set's board ranks full runs only: finished, on the data set's own test split, over
the suite version's full number of examples (:meth:`Store.leaderboard_runs`). Smoke runs
(``--limit``) and runs on custom data (``--data npz:``) are listed apart, below it, not ranked
(:meth:`Store.unranked_runs`): their numbers are not comparable with the full runs'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

import invarbench
from invarbench.measurements import metric_specs
from invarbench.store.db import CUSTOM_DATA, Store, best_full_runs, newest_unranked
from invarbench.store.provenance import PROVENANCE_FIELDS
from invarbench.store.schema import RunRecord

UNRANKED_TITLE = "Smoke runs and runs on custom data — not ranked"


@dataclass(frozen=True)
class MetricCell:
    value: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class ProvenanceCell:
    """One provenance field the site shows beside a run's id (:attr:`ProvenanceField.site`)."""

    label: str
    text: str


@dataclass(frozen=True)
class LeaderboardRow:
    card_id: str
    name: str
    training: str
    suite: str
    run_id: int
    examples: int
    full_examples: int | None  # the suite version's full number of examples, when known
    data: str  # "<dataset> test split", or the custom evaluation set's data_source
    kind: str  # FULL, SMOKE or CUSTOM_DATA (invarbench.store.db)
    provenance: list[ProvenanceCell]  # the site's provenance fields the run recorded, e.g. device and model dtype
    finished: str
    flags: list[str]
    metrics: dict[str, MetricCell]


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    percent: bool  # a proportion shown as a percentage; otherwise a plain number
    better: str | None  # "higher", "lower", or None (neither: the number describes the model)
    reads: str  # one line on how to read it (the header's tooltip)


@dataclass(frozen=True)
class DatasetBoard:
    dataset: str
    rows: list[LeaderboardRow]  # ranked: full runs on the test split only
    columns: list[Column]
    unranked: list[LeaderboardRow]  # listed apart: smoke runs and runs on custom data
    unranked_columns: list[Column]


def metric_columns() -> list[Column]:
    """Every registered metric (:func:`invarbench.measurements.metric_specs`), in registry order."""
    return [Column(s.name, s.label, s.percent, s.better, s.reads) for s in metric_specs()]


def _row(run: RunRecord, kind: str, full_examples: int | None) -> LeaderboardRow:
    return LeaderboardRow(
        card_id=run.model.card_id,
        name=run.model.name,
        training=run.model.training_method,
        suite=f"{run.suite_name} v{run.suite_version}",
        run_id=run.id,
        examples=run.examples_effective,
        full_examples=full_examples,
        data=run.data_source or f"{run.dataset} test split",
        kind=kind,
        provenance=[
            ProvenanceCell(f.label, f.text(run)) for f in PROVENANCE_FIELDS if f.site and f.value(run) is not None
        ],
        finished=run.finished_at.strftime("%Y-%m-%d %H:%M") if run.finished_at else "",
        flags=list(run.flags or []),
        metrics={m.name: MetricCell(m.value, m.ci_low, m.ci_high) for m in run.metrics},
    )


def _columns(rows: list[LeaderboardRow]) -> list[Column]:
    """The registered metrics that at least one row has, then any other stored metric by name (a run
    made by a version that had a measurement this one lacks)."""
    known = metric_columns()
    columns = [c for c in known if any(c.metric in r.metrics for r in rows)]
    others = sorted({name for r in rows for name in r.metrics} - {c.metric for c in known})
    return columns + [Column(name, name, False, None, "") for name in others]


def leaderboard(store: Store) -> list[DatasetBoard]:
    """One board per data set that has finished runs, in name order.

    Its ranked rows are the full runs of :meth:`Store.latest_finished_runs`, by robust accuracy, then clean
    accuracy; its unranked rows, listed apart, are :meth:`Store.unranked_runs`, by model card id, suite and
    data. Returns the boards.
    """
    ranked: dict[str, list[LeaderboardRow]] = {}
    apart: dict[str, list[LeaderboardRow]] = {}
    standings = store.standings()
    by_id = {st.run.id: st for st in standings}
    for run in best_full_runs(standings, per_suite_version=False):  # what Store.latest_finished_runs gives
        st = by_id[run.id]
        ranked.setdefault(run.dataset, []).append(_row(run, st.kind, st.full_examples))
    for st in newest_unranked(standings):  # what Store.unranked_runs gives
        apart.setdefault(st.run.dataset, []).append(_row(st.run, st.kind, st.full_examples))

    def rank(row: LeaderboardRow) -> tuple[float, float]:
        def get(name: str) -> float:
            cell = row.metrics.get(name)
            return cell.value if cell else float("-inf")

        return (-get("robust_accuracy_linf"), -get("clean_accuracy"))

    def listed(row: LeaderboardRow) -> tuple:
        return (row.card_id, row.suite, row.kind == CUSTOM_DATA, row.data, row.run_id)

    boards = []
    for name in sorted(ranked.keys() | apart.keys()):
        rows, unranked = sorted(ranked.get(name, []), key=rank), sorted(apart.get(name, []), key=listed)
        boards.append(DatasetBoard(name, rows, _columns(rows), unranked, _columns(unranked)))
    return boards


def build_site(store: Store, out: Path) -> Path:
    """Write ``out/index.html``; return its path."""
    env = Environment(loader=PackageLoader("invarbench.site", "templates"), autoescape=select_autoescape())
    html = env.get_template("index.html").render(
        boards=leaderboard(store),
        unranked_title=UNRANKED_TITLE,
        version=invarbench.__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
