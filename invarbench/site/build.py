"""Rendering the leaderboard from stored runs.

Templates receive typed context objects (:class:`LeaderboardRow`), never database records.

Each data set's board ranks full runs only: finished, on the data set's own test split, over
the suite version's full number of examples (:meth:`Store.leaderboard_runs`). Smoke runs
(``--limit``) and runs on custom data (``--data npz:``) are listed apart, below it, not ranked
(:meth:`Store.unranked_runs`): their numbers are not comparable with the full runs'.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

import invarbench
from invarbench.measurements import metric_specs
from invarbench.store.db import CUSTOM_DATA, Store, best_full_runs, newest_unranked
from invarbench.store.export import csv_text, dumps, import_path, run_document
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
    """One board: a data set and one suite version (runs of different versions are never ranked together)."""

    dataset: str
    rows: list[LeaderboardRow]  # ranked: full runs on the test split only
    columns: list[Column]
    unranked: list[LeaderboardRow]  # listed apart: smoke runs and runs on custom data
    unranked_columns: list[Column]
    suite: str = ""  # the suite's name
    version: int = 0  # the suite's version
    ranks: list[int] = field(default_factory=list)  # per ranked row: shared when the intervals overlap
    rank_metric: str = ""  # the metric the rows are ranked by
    seconds: list[str] = field(default_factory=list)  # per ranked row: the run's evaluation time

    @property
    def slug(self) -> str:
        """The board's id in URLs and file names: ``<dataset>-<suite>-v<version>``."""
        return f"{self.dataset}-{self.suite}-v{self.version}"


# Boards rank by this metric (higher is better), then by clean accuracy; a board whose runs lack it
# ranks by clean accuracy alone.
RANK_METRIC = "robust_accuracy_linf"


def shared_ranks(rows: list[LeaderboardRow], metric: str) -> list[int]:
    """Ranks honest about uncertainty: a row's rank is one plus the number of rows whose 95 % interval of
    ``metric`` lies entirely above its own, so rows whose intervals overlap share a rank. ``rows`` must be
    sorted best first; rows without the metric or its interval get the rank of their position."""
    ranks = []
    for i, row in enumerate(rows):
        cell = row.metrics.get(metric)
        if cell is None or cell.ci_high is None:
            ranks.append(i + 1)
            continue
        above = sum(
            1
            for other in rows
            if (o := other.metrics.get(metric)) is not None and o.ci_low is not None and o.ci_low > cell.ci_high
        )
        ranks.append(above + 1)
    return ranks


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
    """One board per data set and suite version that has finished runs, by data set, suite and version.

    Its ranked rows are the newest full run of each model with that suite version, by
    :data:`RANK_METRIC`, then clean accuracy, with :func:`shared_ranks`; its unranked rows, listed
    apart, are the smoke and custom-data runs of that suite version (:meth:`Store.unranked_runs`), by
    model card id and data. Returns the boards.
    """
    ranked: dict[tuple[str, str, int], list[LeaderboardRow]] = {}
    seconds: dict[int, str] = {}
    apart: dict[tuple[str, str, int], list[LeaderboardRow]] = {}
    standings = store.standings()
    by_id = {st.run.id: st for st in standings}
    for run in best_full_runs(standings, per_suite_version=True):
        st = by_id[run.id]
        ranked.setdefault((run.dataset, run.suite_name, run.suite_version), []).append(
            _row(run, st.kind, st.full_examples)
        )
        seconds[run.id] = "–" if run.duration_s is None else f"{run.duration_s:,.0f} s"
    for st in newest_unranked(standings):
        key = (st.run.dataset, st.run.suite_name, st.run.suite_version)
        apart.setdefault(key, []).append(_row(st.run, st.kind, st.full_examples))

    def value(row: LeaderboardRow, name: str) -> float:
        cell = row.metrics.get(name)
        return cell.value if cell is not None and cell.value == cell.value else float("-inf")

    def listed(row: LeaderboardRow) -> tuple:
        return (row.card_id, row.kind == CUSTOM_DATA, row.data, row.run_id)

    boards = []
    for key in sorted(ranked.keys() | apart.keys()):
        dataset, suite, version = key
        rows = ranked.get(key, [])
        metric = RANK_METRIC if any(RANK_METRIC in r.metrics for r in rows) else "clean_accuracy"
        rows = sorted(rows, key=lambda r: (-value(r, metric), -value(r, "clean_accuracy"), r.card_id))
        unranked = sorted(apart.get(key, []), key=listed)
        boards.append(
            DatasetBoard(
                dataset,
                rows,
                _columns(rows),
                unranked,
                _columns(unranked),
                suite=suite,
                version=version,
                ranks=shared_ranks(rows, metric),
                rank_metric=metric,
                seconds=[seconds[r.run_id] for r in rows],
            )
        )
    return boards


def _generated(store: Store) -> str:
    """The site's date: that of its newest finished run (so that the same database builds the same bytes)."""
    times = [st.run.finished_at for st in store.standings() if st.run.finished_at is not None]
    return max(times).strftime("%Y-%m-%d %H:%M UTC") if times else "no runs yet"


def build_site(store: Store, out: Path) -> Path:
    """Write ``out/index.html`` and, per board, its downloads ``boards/<slug>.json`` (the results documents of
    its ranked runs, the interchange format of docs/store.md) and ``boards/<slug>.csv`` (one row per run and
    metric). The same database gives the same bytes. Returns the index's path."""
    boards = leaderboard(store)
    env = Environment(loader=PackageLoader("invarbench.site", "templates"), autoescape=select_autoescape())
    html = env.get_template("index.html").render(
        boards=boards,
        unranked_title=UNRANKED_TITLE,
        version=invarbench.__version__,
        generated=_generated(store),
        rank_label=lambda name: next((c.label for c in metric_columns() if c.metric == name), name),
    )
    out.mkdir(parents=True, exist_ok=True)
    downloads = out / "boards"
    downloads.mkdir(exist_ok=True)
    for board in boards:
        runs = [store.get_run(row.run_id) for row in board.rows]
        (downloads / f"{board.slug}.json").write_text(dumps([run_document(r) for r in runs]), encoding="utf-8")
        (downloads / f"{board.slug}.csv").write_text(csv_text(runs), encoding="utf-8")
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index


def build_site_from_results(results: Path, out: Path) -> Path:
    """Build the site from published results files (``leaderboard/results/``), imported into a throwaway
    SQLite database, so that a deploy needs no database. Raises what the import raises for a bad file."""
    with tempfile.TemporaryDirectory(prefix="invarbench-site-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'results.db'}")
        try:
            import_path(store, results)
            return build_site(store, out)
        finally:
            store.close()
