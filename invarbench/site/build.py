"""Rendering the leaderboard from stored runs.

Templates receive typed context objects (:class:`LeaderboardRow`), never database records.

Each data set's board ranks full runs only: finished, on the data set's own test split, over
the suite version's full number of examples (:meth:`Store.leaderboard_runs`). Smoke runs
(``--limit``) and runs on custom data (``--data npz:``) are listed apart, below it, not ranked
(:meth:`Store.unranked_runs`): their numbers are not comparable with the full runs'.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

import invarbench
from invarbench import leaderboard_policy as policy
from invarbench.cards.catalog import CardRef, default_cards_dir
from invarbench.cards.schema import TRAINING_METHODS, ModelCard
from invarbench.errors import InvarbenchError, ValidationError
from invarbench.leaderboard_policy import CUSTOM_DATA, best_full_runs, newest_unranked
from invarbench.measurements import metric_specs
from invarbench.measurements.nspgd import STRIP_NAME as _STRIP_PATTERN
from invarbench.site.compare import compare_page_path
from invarbench.site.correlations import ModelPoint, board_correlations
from invarbench.store.csv_view import csv_text
from invarbench.store.db import Store
from invarbench.store.document_checks import check_name, http_url, inside
from invarbench.store.documents import dumps, run_document
from invarbench.store.provenance import PROVENANCE_FIELDS
from invarbench.store.results_files import results_store
from invarbench.store.schema import RunRecord
from invarbench.submissions import FAILED, PENDING, SubmissionStatus, SuiteTarget, derive_statuses
from invarbench.suites import suite_file_examples

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
    kind: str  # FULL, SMOKE or CUSTOM_DATA (invarbench.leaderboard_policy)
    provenance: list[ProvenanceCell]  # the site's provenance fields the run recorded, e.g. device and model dtype
    finished: str
    flags: list[str]
    metrics: dict[str, MetricCell]
    # From the card the run stored (read by the card loader): the architecture's name, its family (the
    # board's filter, invarbench.site.boards.architecture_family) and its group with its arguments (the
    # correlations'); None and "not stated" without an architecture or a valid card.
    architecture: str | None = None
    family: str = "not stated"
    arch_group: str | None = None


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    percent: bool  # a proportion shown as a percentage; otherwise a plain number
    better: str | None  # "higher", "lower", or None (neither: the number describes the model)
    reads: str  # one line on how to read it (the header's tooltip)
    group: str | None = None  # the question it answers (MetricSpec.group); None: another


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
    # The registered cards of the data set with this suite version that are not evaluated (the cards
    # given to :func:`leaderboard`; invarbench.submissions): pending, or failed with the stored error.
    pending: list[SubmissionStatus] = field(default_factory=list)
    failed: list[SubmissionStatus] = field(default_factory=list)
    # The pending ones with their cards' training and architecture family (what the board's filters match).
    pending_models: list = field(default_factory=list)  # invarbench.site.boards.PendingModel
    statuses: dict[str, SubmissionStatus] = field(default_factory=dict)  # every given card's, by id
    # Do the board's axes agree? Rank correlations over its ranked models (invarbench.site.correlations).
    correlations: list = field(default_factory=list)  # BoardCorrelation
    # What was measured, in plain words (invarbench.site.protocol): from the settings its runs recorded, else
    # the registered suite's when it has this version; empty when neither is known.
    protocol: list = field(default_factory=list)  # ProtocolLine
    # The protocol in one line: the suite's description when registered with this version, else made from
    # the settings (invarbench.site.protocol.protocol_summary); empty when the protocol is.
    description: str = ""

    @property
    def slug(self) -> str:
        """The board's id in URLs and file names: ``<dataset>-<suite>-v<version>``."""
        return f"{self.dataset}-{self.suite}-v{self.version}"


def shared_ranks(rows: list[LeaderboardRow], metric: str) -> list[int]:
    """The rows' ranks by ``metric``, ``rows`` sorted best first: the policy's shared ranks over their 95 %
    intervals of ``metric`` (:func:`invarbench.leaderboard_policy.shared_ranks`: shared where they overlap)."""
    return policy.shared_ranks(
        [(c.ci_low, c.ci_high) if (c := row.metrics.get(metric)) is not None else None for row in rows]
    )


def _values(row: LeaderboardRow) -> dict[str, float | None]:
    return {name: cell.value for name, cell in row.metrics.items()}


def metric_columns() -> list[Column]:
    """Every registered metric (:func:`invarbench.measurements.metric_specs`), in registry order."""
    return [Column(s.name, s.label, s.percent, s.better, s.reads, s.group) for s in metric_specs()]


def _row(run: RunRecord, kind: str, full_examples: int | None) -> LeaderboardRow:
    from invarbench.site.boards import architecture_family, architecture_group

    card = _stored_card(run)
    arch = card.architecture if card is not None else None
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
        architecture=arch.name if arch is not None else None,
        family=architecture_family(arch.name if arch is not None else None),
        arch_group=architecture_group(arch.name, arch.kwargs) if arch is not None else None,
    )


def _columns(rows: list[LeaderboardRow]) -> list[Column]:
    """The registered metrics that at least one row has, by group (:data:`METRIC_GROUPS`' order; registry
    order within a group), then any other stored metric by name (a run made by a version that had a
    measurement this one lacks)."""
    from invarbench.measurements.base import METRIC_GROUPS

    order = list(METRIC_GROUPS)
    known = sorted(metric_columns(), key=lambda c: order.index(c.group) if c.group in order else len(order))
    columns = [c for c in known if any(c.metric in r.metrics for r in rows)]
    others = sorted({name for r in rows for name in r.metrics} - {c.metric for c in known})
    return columns + [Column(name, name, False, None, "") for name in others]


def leaderboard(store: Store, cards: Sequence[CardRef] | None = None) -> list[DatasetBoard]:
    """One board per data set and suite version that has finished runs, by data set, suite and version.

    Its ranked rows are the newest full run of each model with that suite version, in the policy's order
    (:func:`invarbench.leaderboard_policy.ranking_key`), with :func:`shared_ranks`; its unranked rows, listed
    apart, are the smoke and custom-data runs of that suite version (:meth:`Store.unranked_runs`), by
    model card id and data; its submissions, the status of each of the registered ``cards`` of its data
    set with that suite version (:func:`invarbench.submissions.derive_statuses`) that is not evaluated:
    pending (no full run of the file the card pins, or one running) or failed (with the stored error).
    Returns the boards.
    """
    from invarbench.site.boards import pending_models

    ranked: dict[tuple[str, str, int], list[LeaderboardRow]] = {}
    seconds: dict[int, str] = {}
    apart: dict[tuple[str, str, int], list[LeaderboardRow]] = {}
    standings = store.standings()
    by_id = {st.run.id: st for st in standings}
    all_runs = store.list_runs() if cards else []  # every status: a failed full run is a failed submission
    recorded: dict[tuple[str, str, int], tuple[int, dict, str | None]] = {}  # the settings of the oldest ranked run
    for run in best_full_runs(standings, per_suite_version=True):
        st = by_id[run.id]
        key = (run.dataset, run.suite_name, run.suite_version)
        ranked.setdefault(key, []).append(_row(run, st.kind, st.full_examples))
        seconds[run.id] = "–" if run.duration_s is None else f"{run.duration_s:,.0f} s"
        if run.suite_settings and (key not in recorded or run.id < recorded[key][0]):
            recorded[key] = (run.id, run.suite_settings, run.data_digest)
    for st in newest_unranked(standings):
        key = (st.run.dataset, st.run.suite_name, st.run.suite_version)
        apart.setdefault(key, []).append(_row(st.run, st.kind, st.full_examples))

    def listed(row: LeaderboardRow) -> tuple:
        return (row.card_id, row.kind == CUSTOM_DATA, row.data, row.run_id)

    boards = []
    for key in sorted(ranked.keys() | apart.keys()):
        dataset, suite, version = key
        rows = ranked.get(key, [])
        metric = policy.ranking_metric(r.metrics for r in rows)
        rows = sorted(rows, key=lambda r: policy.ranking_key(_values(r), r.card_id, metric))
        unranked = sorted(apart.get(key, []), key=listed)
        full = next((r.full_examples for r in [*rows, *unranked] if r.full_examples), None)
        full = full or suite_file_examples(suite, dataset, version)  # the suite file's, when of this version
        mine = [c for c in cards or [] if c.card.dataset == dataset]
        # Without the suite version's full size no run can be told full: no statuses rather than wrong ones.
        statuses = derive_statuses(mine, all_runs, {dataset: SuiteTarget(suite, version, full)}) if full else []
        protocol, description = _board_protocol(dataset, suite, version, recorded.get(key))
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
                pending=[st for st in statuses if st.state == PENDING],
                pending_models=pending_models([st for st in statuses if st.state == PENDING], mine),
                failed=[st for st in statuses if st.state == FAILED],
                statuses={st.card_id: st for st in statuses},
                correlations=board_correlations(
                    [ModelPoint(r.card_id, r.arch_group, {k: c.value for k, c in r.metrics.items()}) for r in rows]
                ),
                protocol=protocol,
                description=description,
            )
        )
    return boards


def _board_protocol(
    dataset: str, suite: str, version: int, recorded: tuple[int, dict, str | None] | None
) -> tuple[list, str]:
    """A board's protocol lines (:func:`invarbench.site.protocol.protocol_lines`) and its one-line summary:
    from the settings and data digest a ranked run recorded, else from the registered suite when it has this
    version; the summary is that suite's description, else made from the settings
    (:func:`invarbench.site.protocol.protocol_summary`); ([], "") when neither is known."""
    from invarbench.site.protocol import protocol_lines, protocol_summary
    from invarbench.suites import load_suite

    try:
        registered = load_suite(suite, dataset)
    except InvarbenchError:  # a suite this installation does not have (an imported run's)
        registered = None
    current = registered if registered is not None and registered.version == version else None
    settings = recorded[1] if recorded is not None else current.settings() if current is not None else None
    if settings is None:
        return [], ""
    description = current.description if current is not None else protocol_summary(settings)
    return protocol_lines(settings, digest=recorded[2] if recorded is not None else None), description


SCATTER_X, SCATTER_Y = "median_min_l2_distance", "path_width"
HUMAN_X, HUMAN_Y = "robust_accuracy_linf", "human_agreement_relabelled"
# What larger values of a metric mean where neither end is better (MetricSpec.better None).
_DIRECTIONS = {"path_width": "wider: more invariant"}


@dataclass(frozen=True)
class FigurePoint:
    """One point of a scatter, as the table under it lists it: the model, its page, its training method
    and both values with their intervals as text."""

    name: str
    href: str
    training: str
    x: str
    y: str


def _value_text(cell: MetricCell, percent: bool) -> str:
    scale, fmt = (100.0, "{:.1f}") if percent else (1.0, "{:.3f}")
    text = fmt.format(scale * cell.value) + (" %" if percent else "")
    if cell.ci_low is not None and cell.ci_high is not None:
        text += f" [{fmt.format(scale * cell.ci_low)}, {fmt.format(scale * cell.ci_high)}]"
    return text


def board_correlation(board: DatasetBoard, x: str, y: str) -> str:
    """Spearman's rank correlation of metric ``x`` against ``y`` over the board's ranked models, as text
    (:meth:`BoardCorrelation.text`): the board's own (``board.correlations``, where the board carries
    them) or computed here with :func:`invarbench.metrics.correlation.spearman` (seed 0, as
    :func:`invarbench.site.correlations.board_correlations`)."""
    from invarbench.metrics.correlation import spearman
    from invarbench.site.correlations import BoardCorrelation

    for c in getattr(board, "correlations", None) or []:
        if getattr(c, "x", None) == x and getattr(c, "y", None) == y and getattr(c, "group", "") is None:
            return c.text()

    def column(name: str) -> list[float]:
        return [r.metrics[name].value if name in r.metrics else float("nan") for r in board.rows]

    return BoardCorrelation(x, y, None, spearman(column(x), column(y), seed=0)).text()


def _board_scatter(board: DatasetBoard, x_name: str, y_name: str, title: str, question: str) -> Figure | None:
    from invarbench.site import plots

    specs = {s.name: s for s in metric_specs()}
    xs, ys = specs.get(x_name), specs.get(y_name)
    if xs is None or ys is None:
        return None
    points, table = [], []
    for row in board.rows:
        x, y = row.metrics.get(x_name), row.metrics.get(y_name)
        if x is None or y is None:
            continue
        href = model_page_path(board, row.card_id)
        sx, sy = (100.0 if xs.percent else 1.0), (100.0 if ys.percent else 1.0)

        def scaled(v: float | None, s: float) -> float | None:
            return None if v is None else s * v

        points.append(
            plots.ScatterPoint(
                row.name,
                sx * x.value,
                scaled(x.ci_low, sx),
                scaled(x.ci_high, sx),
                sy * y.value,
                scaled(y.ci_low, sy),
                scaled(y.ci_high, sy),
                href,
                group=row.training,
            )
        )
        table.append(FigurePoint(row.name, href, row.training, _value_text(x, xs.percent), _value_text(y, ys.percent)))
    if not points:
        return None

    def axis(spec, which: str) -> str:
        unit = "%" if spec.percent else spec.unit
        return plots.axis_title(f"{spec.label} ({unit})", which, spec.better, _DIRECTIONS.get(spec.name))

    plot = plots.scatter(points, axis(xs, "x"), axis(ys, "y"), title=title)
    caption = (
        f"{question} Each point is a ranked model of this board with its 95 % intervals, coloured by training "
        f"method; it links to the model's page. Spearman's rank correlation of {xs.label} and {ys.label} over the "
        f"board's models: {board_correlation(board, x_name, y_name)}."
    )
    return Figure(
        title,
        plot.svg,
        plot.alt,
        caption=caption,
        points=table,
        columns=(f"{xs.label} ({'%' if xs.percent else xs.unit})", f"{ys.label} ({'%' if ys.percent else ys.unit})"),
        slug=f"{board.slug}-{x_name}-{y_name}".replace("_", "-"),
    )


def board_scatters(board: DatasetBoard) -> list[Figure]:
    """A board's scatters of its ranked models: sensitivity (the median minimal L2 distance) against
    invariance (the path width), and, where the board has the human-judged invariance metric, L∞ robust
    accuracy against it. Each with axis titles, units and the better direction, points coloured by
    training method and linking to the model pages, a caption with the board's rank correlation, and a
    table of the points (:class:`FigurePoint`) for readers who do not see the picture."""
    figures = [
        _board_scatter(
            board,
            SCATTER_X,
            SCATTER_Y,
            "Sensitivity against invariance",
            "Are the models that need larger perturbations to be fooled also the ones with wider tubes of "
            "near-constant confidence around the NSPGD path?",
        ),
        _board_scatter(
            board,
            HUMAN_X,
            HUMAN_Y,
            "Robustness against human-judged invariance",
            "Do the adversarially robust models also agree with the humans on the images the humans relabelled "
            "(Tramèr et al., 2020), or are they excessively invariant there?",
        ),
    ]
    return [f for f in figures if f is not None]


def board_scatter(board: DatasetBoard) -> Figure | None:
    """The first of :func:`board_scatters` (sensitivity against invariance), or None without data."""
    figures = board_scatters(board)
    return figures[0] if figures and figures[0].title == "Sensitivity against invariance" else None


def _generated(store: Store) -> str:
    """The site's date: that of its newest finished run (so that the same database builds the same bytes)."""
    times = [st.run.finished_at for st in store.standings() if st.run.finished_at is not None]
    return max(times).strftime("%Y-%m-%d %H:%M UTC") if times else "no runs yet"


def build_site(store: Store, out: Path, cards_dir: Path | None = None, repository_url: str | None = None) -> Path:
    """:func:`render_site` into a temporary sibling folder of ``out`` that then replaces ``out`` in one rename,
    under a lock (:func:`invarbench.site.publish.publish_site`: nothing of an earlier build survives; a second
    build into ``out`` at the same time fails with one line). ``repository_url``: the project's repository, which
    the pages link to (its docs, CONTRIBUTING, the methods); None: ``[project.urls] Repository`` of the checkout's
    pyproject.toml, else a placeholder (:func:`invarbench.site.protocol.using_repository`). Returns
    ``out/index.html``. Raises ``ValidationError`` for a repository URL that is not an https URL without quotes or
    whitespace."""
    from invarbench.site.protocol import using_repository
    from invarbench.site.publish import publish_site

    with using_repository(repository_url):
        return publish_site(out, lambda folder: render_site(store, folder, cards_dir))


def render_site(store: Store, out: Path, cards_dir: Path | None = None) -> Path:
    """Write ``out/index.html`` and, per board, its downloads ``boards/<slug>.json`` (the results documents of
    its ranked runs, the interchange format of docs/store.md) and ``boards/<slug>.csv`` (one row per run and
    metric). Registered cards (``cards_dir``) without a run of a board's suite version are listed as pending
    under it. The same database and cards give the same bytes. Returns the index's path."""
    from invarbench.site.boards import index_context
    from invarbench.submissions import registered_cards

    boards = leaderboard(store, registered_cards(cards_dir)[0])  # a card that does not load is left out
    for board in boards:  # names that become paths, checked before anything is written
        for what, name in (("data set", board.dataset), ("suite", board.suite)):
            check_name(name, f"the {what} of a stored run", fix="such a run cannot be published")
        for row in board.rows:
            check_name(row.card_id, f"run {row.run_id}: model card id", card_id=True, fix="it cannot be published")
    generated = _generated(store)
    env = Environment(loader=PackageLoader("invarbench.site", "templates"), autoescape=select_autoescape())
    html = env.get_template("index.html").render(
        boards=boards,
        unranked_title=UNRANKED_TITLE,
        version=invarbench.__version__,
        generated=generated,
        rank_label=lambda name: next((c.label for c in metric_columns() if c.metric == name), name),
        page_path=model_page_path,
        compare_path=compare_page_path,  # a board's compare page (invarbench.site.compare), for its link
        scatters={b.slug: board_scatter(b) for b in boards},
        board_figures={b.slug: board_scatters(b) for b in boards},
        **index_context(store, boards),
    )
    out.mkdir(parents=True, exist_ok=True)
    downloads = out / "boards"
    downloads.mkdir(exist_ok=True)
    runs = {row.run_id: store.get_run(row.run_id) for board in boards for row in board.rows}  # each read once
    for board in boards:
        ranked = [runs[row.run_id] for row in board.rows]
        inside(out, downloads / f"{board.slug}.json").write_text(
            dumps([run_document(r) for r in ranked]), encoding="utf-8"
        )
        inside(out, downloads / f"{board.slug}.csv").write_text(csv_text(ranked), encoding="utf-8")
    page_template = env.get_template("model.html")
    pages = model_pages(store, boards, runs, cards_dir=cards_dir or default_cards_dir())
    for page in pages:
        target = inside(out, out / page.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            page_template.render(page=page, generated=generated, version=invarbench.__version__), encoding="utf-8"
        )
        target.with_suffix(".json").write_text(dumps(run_document(runs[page.run_id])), encoding="utf-8")
        if page.strips:
            pictures = inside(out, target.parent / page.files_dir)
            pictures.mkdir(exist_ok=True)
            stored = {a.name: a.data for a in runs[page.run_id].artifacts}
            for strip in page.strips:
                name = strip.src.rsplit("/", 1)[-1]
                inside(out, pictures / name).write_bytes(stored[name])
        if page.disagreements:
            pictures = inside(out, target.parent / page.files_dir)
            pictures.mkdir(exist_ok=True)
            name = page.disagreements.src.rsplit("/", 1)[-1]
            inside(out, pictures / name).write_bytes({a.name: a.data for a in runs[page.run_id].artifacts}[name])
    _write_compare_pages(env, out, boards, pages, generated)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index


def _write_compare_pages(env: Environment, out: Path, boards: list[DatasetBoard], pages: list, generated: str) -> None:
    """Each board's compare page (:mod:`invarbench.site.compare`) and the model pages' tubes as SVG files it shows."""
    from invarbench.site.compare import compare_pages, tube_files

    for path, svg in tube_files(pages).items():
        target = inside(out, out / path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(svg, encoding="utf-8")
    template = env.get_template("compare.html")
    for page in compare_pages(boards, pages):
        inside(out, out / page.path).write_text(
            template.render(page=page, generated=generated, version=invarbench.__version__), encoding="utf-8"
        )


def build_site_from_results(
    results: Path, out: Path, cards_dir: Path | None = None, repository_url: str | None = None
) -> Path:
    """Build the site from published results files (``leaderboard/results/``), imported into a throwaway
    SQLite database, so that a deploy needs no database; ``repository_url`` as in :func:`build_site`, checked
    first. Raises what the import raises for a bad file."""
    from invarbench.site.protocol import using_repository

    with using_repository(repository_url) as checked, results_store(results) as store:
        return build_site(store, out, cards_dir, checked)


@dataclass(frozen=True)
class MetricLine:
    """One metric on a model page: its spec's label and how to read it, the value and its interval."""

    name: str
    label: str
    reads: str
    percent: bool
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass(frozen=True)
class Figure:
    """A picture of a page: inline SVG text (made by :mod:`invarbench.site.plots`) and its alt text; a
    ``caption`` that says what it shows; for a scatter, its ``points`` as a table (``columns``: the x and
    y headings), and ``slug``, its id on the page; ``marks``, the numbers it marks (``Plot.marks``; a tube's
    also ``max_pairs``, its suite's setting, when recorded)."""

    title: str
    svg: str
    alt: str
    caption: str = ""
    points: list = field(default_factory=list)  # FigurePoint
    columns: tuple[str, str] = ("", "")
    slug: str = ""
    marks: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StripPanel:
    """One image of an NSPGD strip: what it is ("source", "step 6", "end (step 17)", "target"), the
    model's confidence in the source class there (softmax probability) and its predicted class, with that class
    as the page says it (:func:`class_text`: "truck", "class 7")."""

    label: str
    p_source: float
    predicted: int
    left: int  # where the panel starts in the strip's PNG, in pixels
    predicted_name: str = ""


def class_text(dataset: str, label: int) -> str:
    """Class ``label`` of ``dataset`` as the site writes it: the data set registry's name of the class
    (:func:`invarbench.data.class_name`: "ship" for CIFAR-10's 8), or "class 7" where that name is only the
    label itself (MNIST's digits) or the data set names no classes."""
    from invarbench.data import class_name

    name = class_name(dataset, label)
    return f"class {label}" if name == str(label) else name


@dataclass(frozen=True)
class ImageStrip:
    """An NSPGD walk as the run drew it (:mod:`invarbench.measurements.nspgd`, ``image_strip``): the PNG
    (``src``, relative to the model page; ``width`` x ``height`` pixels, panels of ``panel_width`` pixels
    side by side), its alt text and its panels. The page shows each panel in its own table cell, a
    window onto the one PNG, so that the numbers stand under their image at any width."""

    pair: int
    src: str
    width: int
    height: int
    panel_width: int
    alt: str
    caption: str
    panels: list[StripPanel]


STRIP_NAME = re.compile(_STRIP_PATTERN)  # the strips' artifact names, as the NSPGD measurement declares them


def _strips(run: RunRecord, folder: str) -> list[ImageStrip]:
    """The run's image strips, by pair; a strip whose JSON or PNG is missing or malformed (an imported
    file of someone else's) is left out rather than shown wrong. ``folder``: where the page finds the PNGs."""
    from PIL import Image, UnidentifiedImageError

    from invarbench.measurements.images import GAP_PX

    files = {a.name: a.data for a in run.artifacts if STRIP_NAME.fullmatch(a.name)}
    strips = []
    for name in sorted(n for n in files if n.endswith(".json")):
        try:
            doc = json.loads(files[name])
            png = files[doc["image"]]
            with Image.open(io.BytesIO(png)) as image:
                width, height = image.size
            count = len(doc["panels"])
            panel_width, rest = divmod(width - (count - 1) * GAP_PX, count)
            if rest or panel_width < 1:
                continue  # not a strip of this many panels
            panels = [
                StripPanel(
                    str(p["label"]),
                    float(p["p_source"]),
                    int(p["predicted"]),
                    k * (panel_width + GAP_PX),
                    class_text(run.dataset, int(p["predicted"])),
                )
                for k, p in enumerate(doc["panels"])
            ]
            src, tgt = int(doc["source_label"]), int(doc["target_label"])
            pair, steps = int(doc["pair"]), int(doc["accepted_steps"])
            start_d = float(doc["panels"][0]["distance_to_target_l2"])
            end_d = float(doc["panels"][-2]["distance_to_target_l2"])
        except (ValueError, KeyError, TypeError, IndexError, UnidentifiedImageError):
            continue
        if len(panels) < 3 or doc["image"] != name.removesuffix(".json") + ".png":
            continue
        end = panels[-2]
        source, target = class_text(run.dataset, src), class_text(run.dataset, tgt)
        alt = (
            f"NSPGD walk of pair {pair}: a {source} source (source-class confidence {panels[0].p_source:.3f}) "
            f"and {len(panels) - 3} images along the walk to its end point after {steps} steps (confidence "
            f"{end.p_source:.3f}, predicted {end.predicted_name}), then the {target} target; the distance to "
            f"the target fell from {start_d:.2f} to {end_d:.2f} (L2)."
        )
        caption = (
            f"Pair {pair}: example {doc['source']} ({source}) toward example {doc['target']} ({target}); "
            f"{steps} steps accepted, L2 distance to the target {start_d:.2f} → {end_d:.2f}."
        )
        strips.append(ImageStrip(pair, f"{folder}/{doc['image']}", width, height, panel_width, alt, caption, panels))
    return strips


@dataclass(frozen=True)
class ProbePanel:
    """One image where the model disagrees with the human labellers (:mod:`invarbench.measurements.human_invariance`):
    its probe set and MNIST index, the original and human labels, the model's prediction and confidence, and
    where it lies in the picture's PNG (``left``, ``top``, pixels)."""

    set: str
    mnist_index: int
    original_label: int
    human_label: int
    predicted: int
    confidence: float
    left: int
    top: int


@dataclass(frozen=True)
class DisagreementPicture:
    """The run's picture of its disagreements with the humans: the PNG (``src``, relative to the model
    page; panels ``size`` pixels square) and its panels."""

    src: str
    size: int
    panels: list[ProbePanel]


def _disagreements(run: RunRecord, folder: str) -> DisagreementPicture | None:
    """The run's human-invariance picture, or None when it has none or it is malformed (left out rather
    than shown wrong). ``folder``: where the page finds the PNG."""
    from invarbench.measurements.human_invariance import PICTURE

    files = {a.name: a.data for a in run.artifacts if a.name in (f"{PICTURE}.json", f"{PICTURE}.png")}
    try:
        doc = json.loads(files[f"{PICTURE}.json"])
        if doc["image"] != f"{PICTURE}.png" or doc["image"] not in files:
            return None
        panels = [
            ProbePanel(
                str(p["set"]),
                int(p["mnist_index"]),
                int(p["original_label"]),
                int(p["human_label"]),
                int(p["predicted"]),
                float(p["confidence"]),
                int(p["left"]),
                int(p["top"]),
            )
            for p in doc["panels"]
        ]
        return DisagreementPicture(f"{folder}/{doc['image']}", int(doc["panel_size"]), panels)
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class ModelPage:
    """The page of one ranked run: the card, every metric, full provenance, the flags explained, the figures."""

    path: str  # relative to the site's root
    board: str  # the board's slug
    card_id: str
    name: str
    training: str
    card_fields: list[tuple[str, str]]
    hub_url: str | None  # an http(s) URL, or None
    paper: tuple[str, str | None] | None  # (title, url): the url an http(s) URL or None (the title shown as text)
    metrics: list[MetricLine]
    provenance: list[ProvenanceCell]
    flags: list[tuple[str, str]]  # (flag, what it means)
    figures: list[Figure]
    json_name: str
    run_id: int
    status: SubmissionStatus | None = None  # the card's submission status with the board's suite version
    strips: list[ImageStrip] = field(default_factory=list)  # NSPGD walks, their PNGs in ``files_dir``
    files_dir: str = ""  # the folder of the page's pictures, relative to the page
    human: list = field(default_factory=list)  # human_invariance per probe set (SetBreakdown), pooled last
    disagreements: DisagreementPicture | None = None  # the probe images where the model disagrees with humans
    # What a researcher cites: where the model stands, what it is, where it comes from, how to run it again.
    board_title: str = ""  # "mnist5k · standard v4"
    training_label: str = ""  # the training method in words (TRAINING_METHODS)
    rank: int | None = None  # the shared rank on the board (shared_ranks)
    ranked: int = 0  # models on the board
    rank_label: str = ""  # the metric the board ranks by, its label
    architecture: str = ""
    parameters: str = ""  # the count ("61,706"), or "not available (why)"
    parameter_count: int | None = None
    preprocessing: str = ""
    weights_sha256: str = ""  # of the model file the run evaluated
    card_sha256: str = ""
    origin: OriginInfo | None = None
    protocol: list = field(default_factory=list)  # invarbench.site.protocol.ProtocolLine: the suite in words
    caveats: dict[str, list[str]] = field(default_factory=dict)  # metric -> its flags' verdicts ("may be wrong")
    flag_concerns: dict[str, list[str]] = field(default_factory=dict)  # flag -> the labels of the metrics it concerns
    run_command: str = ""
    run_python: str = ""
    suite_name: str = ""
    suite_version: int = 0


def model_page_path(board: DatasetBoard, card_id: str) -> str:
    """Where a model's page of a board lives, relative to the site's root."""
    return f"models/{board.slug}/{card_id.split('/', 1)[-1]}.html"


def _per_example(store: Store, run_id: int) -> dict[str, dict[str, list]]:
    from invarbench.evaluation.measure import merge_batches  # the site reads values as the aggregation does

    return merge_batches(values for _, values in sorted(store.stored_batches(run_id).items()))


def _figures(run: RunRecord, values: dict[str, dict[str, list]]) -> list[Figure]:
    """The figures the run's measurements declare (``Measurement.figures``: the path-width tube, the
    histogram of minimal distances, ...), in the registry's order, each drawn by the plot of its kind
    with a caption on how to read it."""
    from invarbench.measurements import MEASUREMENTS
    from invarbench.site import plots

    # The plot that draws each kind of figure a measurement declares (FigureData.kind), given its data.
    draw = {"tube": plots.tube_plot, "distance_histogram": plots.distance_histogram}
    stored = {m.name: m.value for m in run.metrics}
    recorded = (run.suite_settings or {}).get("measurements", {})
    figures = []
    for m in MEASUREMENTS.in_order():
        if m.figures is None or m.name not in values:
            continue
        for fig in m.figures(values, recorded.get(m.name) or {}, stored):
            plot = draw[fig.kind](**fig.data)
            caption, marks = fig.caption, dict(plot.marks)
            if fig.kind == "tube":  # its numbers in words: the pairs it averages over, the path width it marks
                max_pairs = (recorded.get(m.name) or {}).get("max_pairs")
                if max_pairs is not None:
                    marks["max_pairs"] = float(max_pairs)
                caption = plots.tube_caption(
                    int(marks.get("pairs", 0)),
                    int(max_pairs) if max_pairs is not None else None,
                    marks.get("path_width"),
                    float(fig.data.get("width_fraction", 0.5)),
                )
            figures.append(Figure(fig.title, plot.svg, plot.alt, caption=caption, marks=marks))
    return figures


def _stored_card(run: RunRecord) -> ModelCard | None:
    """The card a run stored (``card_yaml``), read by the card loader and validated by the card schema; None
    when it is not a valid card (then the page shows no card fields and no links from it)."""
    from invarbench.cards.catalog import card_from_data, parse_card_yaml

    try:
        return card_from_data(parse_card_yaml(run.model.card_yaml, f"run {run.id}"), f"run {run.id}")
    except ValidationError:
        return None


def model_pages(
    store: Store,
    boards: list[DatasetBoard],
    runs: dict[int, RunRecord] | None = None,
    *,
    cards_dir: Path | None = None,
) -> list[ModelPage]:
    """One page per ranked run of every board (``runs``: the ranked runs already read, by id). The parameter
    count is read from the safetensors header of the card's file in ``cards_dir`` when that file is the
    run's (the same sha256); otherwise the page says it is not available, and why."""
    from invarbench.measurements import flag_docs
    from invarbench.measurements.human_invariance import breakdown as human_breakdown
    from invarbench.site.boards import flag_info
    from invarbench.site.protocol import protocol_lines

    specs = {s.name: s for s in metric_specs()}
    docs = flag_docs()
    pages = []
    for board in boards:
        for row in board.rows:
            run = runs[row.run_id] if runs and row.run_id in runs else store.get_run(row.run_id)
            valid = _stored_card(run)
            card = valid.model_dump(exclude_none=True) if valid is not None else {}
            hub = valid.source.hub if valid is not None else None
            hub_url = http_url(
                f"https://huggingface.co/{hub.repo_id}/blob/{hub.revision}/{hub.file}" if hub is not None else None
            )
            paper = valid.paper if valid is not None else None
            fields = _card_fields(card)
            values = _per_example(store, run.id)
            metrics = [
                MetricLine(
                    m.name,
                    specs[m.name].label if m.name in specs else m.name,
                    specs[m.name].reads if m.name in specs else "",
                    bool(specs[m.name].percent) if m.name in specs else False,
                    m.value,
                    m.ci_low,
                    m.ci_high,
                    m.n,
                )
                for m in run.metrics
            ]
            by_name = {m.name: m for m in metrics}
            count, parameters = _parameters(valid, run.model.file_sha256, cards_dir)
            caveats: dict[str, list[str]] = {}
            concerns: dict[str, list[str]] = {}
            for flag in run.flags or []:
                info = flag_info(flag, docs)
                for name in flag_metrics(flag, list(by_name)):
                    verdict = info.caveat.split(":", 1)[0]  # "likely too optimistic"; the flag says why
                    if verdict not in caveats.get(name, []):
                        caveats.setdefault(name, []).append(verdict)
                    concerns.setdefault(flag, []).append(by_name[name].label)
            command, python = run_snippets(row.card_id, board.dataset, board.suite)
            position = board.rows.index(row)
            pages.append(
                ModelPage(
                    path=model_page_path(board, row.card_id),
                    board=board.slug,
                    card_id=row.card_id,
                    name=row.name,
                    training=row.training,
                    card_fields=fields,
                    hub_url=hub_url,
                    paper=(paper.title, http_url(paper.url)) if paper is not None else None,
                    metrics=metrics,
                    provenance=[
                        ProvenanceCell(f.label, f.text(run))
                        for f in PROVENANCE_FIELDS
                        if f.value(run) is not None and f.name != "suite_settings"  # the hash stands for them here
                    ],
                    flags=[(f, docs.get(f, "")) for f in run.flags or []],
                    figures=_figures(run, values),
                    json_name=Path(model_page_path(board, row.card_id)).with_suffix(".json").name,
                    run_id=row.run_id,
                    status=board.statuses.get(row.card_id),
                    strips=_strips(run, Path(model_page_path(board, row.card_id)).stem),
                    files_dir=Path(model_page_path(board, row.card_id)).stem,
                    human=human_breakdown(values["human_invariance"]) if values.get("human_invariance") else [],
                    disagreements=_disagreements(run, Path(model_page_path(board, row.card_id)).stem),
                    board_title=f"{board.dataset} · {board.suite} v{board.version}",
                    training_label=TRAINING_METHODS.get(row.training, row.training),
                    rank=board.ranks[position] if position < len(board.ranks) else position + 1,
                    ranked=len(board.rows),
                    rank_label=next((c.label for c in metric_columns() if c.metric == board.rank_metric), ""),
                    architecture=_architecture(valid),
                    parameters=parameters,
                    parameter_count=count,
                    preprocessing=_preprocessing(valid),
                    weights_sha256=run.model.file_sha256,
                    card_sha256=run.model.card_sha256,
                    origin=_origin(valid, by_name),
                    protocol=protocol_lines(run.suite_settings, digest=run.data_digest) if run.suite_settings else [],
                    caveats=caveats,
                    flag_concerns=concerns,
                    run_command=command,
                    run_python=python,
                    suite_name=board.suite,
                    suite_version=board.version,
                )
            )
    return pages


# --- what a model page says about the model: a citable record -------------------------------------


def flag_metrics(flag: str, metrics: Sequence[str]) -> list[str]:
    """The metrics among ``metrics`` whose numbers ``flag`` says may be wrong, as the board marks them
    (:func:`invarbench.site.boards.flag_info`: a batch-dependent model's every number, and an unknown
    flag's too: better a caveat too many)."""
    from invarbench.site.boards import flag_info

    concerned = flag_info(flag, {}).concerns
    return list(metrics) if concerned is None else [m for m in metrics if m in concerned]


# The card's fields as a reader names them (invarbench.cards.schema.ModelCard), in the order shown.
CARD_LABELS: dict[str, str] = {
    "id": "Card id",
    "name": "Name",
    "dataset": "Data set",
    "num_classes": "Classes",
    "format": "File format",
    "license": "Licence of the weights",
    "submitted_by": "Submitted by",
    "training.method": "Training method",
    "training.norm": "Training threat model: norm",
    "training.eps": "Training threat model: ε ([0, 1] pixel scale)",
    "notes": "Notes",
}
NOT_AVAILABLE = "not available"
# safetensors: an 8-byte little-endian header length, then a JSON header; the format caps it at 100 MB.
SAFETENSORS_HEADER_LIMIT = 100_000_000


@dataclass(frozen=True)
class ReportedLine:
    """One number the upstream reports (``ReportedNumber`` of the card's origin) beside the number this
    run measured for the same quantity, when the suite measures it (clean accuracy or error); ``measured``
    is None otherwise, ``note`` says why or how the two differ (other images, another attack)."""

    metric: str
    reported: str
    split: str
    where: str
    measured: str | None
    note: str


@dataclass(frozen=True)
class OriginInfo:
    """The card's ``origin``: the upstream file (``repository``@``commit``:``path`` with a link to it when
    the repository is on GitHub), its sha256 before conversion, licence, authors, paper, training as the
    upstream states it, the conversion's notes and the upstream-reported numbers against the measured."""

    repository: str
    repository_url: str | None
    commit: str
    path: str
    file_url: str | None
    sha256: str
    license: str
    authors: str
    paper: tuple[str, str | None] | None
    training: str
    notes: str | None
    reported: list[ReportedLine]


def safetensors_parameters(path: Path) -> int:
    """The number of parameters (elements of every tensor) of the safetensors file at ``path``, read from
    its header alone: an 8-byte little-endian length, then that many bytes of JSON mapping each tensor's
    name to its ``dtype``, ``shape`` and ``data_offsets`` (the ``__metadata__`` entry aside). The tensors
    are never read. Raises ``ValueError`` naming the problem when the header is not a safetensors header
    (too short, longer than the format's 100 MB, not JSON, a shape that is not a list of counts) and
    ``OSError`` when the file cannot be read."""
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path.name} is shorter than a safetensors header")
        size = int.from_bytes(head, "little")
        if size > SAFETENSORS_HEADER_LIMIT:
            raise ValueError(f"{path.name}: a header of {size} bytes is longer than safetensors allows")
        raw = f.read(size)
    if len(raw) != size:
        raise ValueError(f"{path.name}: the header is cut short")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path.name}: the header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: the header is not a JSON object")
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ValueError(f"{path.name}: tensor {name!r} has no valid shape")
        count = 1
        for d in shape:
            count *= d
        total += count
    return total


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _parameters(card: ModelCard | None, weights_sha256: str, cards_dir: Path | None) -> tuple[int | None, str]:
    """The parameter count of the run's model file when the cards folder holds it (a safetensors card
    with a local ``path`` whose bytes are the run's: the same sha256), with the text a page shows; else
    None and why not."""
    if card is None:
        return None, f"{NOT_AVAILABLE} (the run's card is not a valid card)"
    if card.format != "safetensors":
        return None, f"{NOT_AVAILABLE} (a {card.format} program: no safetensors header to read)"
    if card.source.path is None:
        return None, f"{NOT_AVAILABLE} (the model file is on the Hub, not in the cards folder)"
    if cards_dir is None:
        return None, f"{NOT_AVAILABLE} (no cards folder)"
    path = cards_dir / card.dataset / card.source.path
    try:
        if not path.is_file():
            return None, f"{NOT_AVAILABLE} (the cards folder has no {card.source.path})"
        if _file_sha256(path) != weights_sha256:
            return None, f"{NOT_AVAILABLE} (the cards folder's {card.source.path} is another file than the run's)"
        count = safetensors_parameters(path)
    except (OSError, ValueError) as exc:
        return None, f"{NOT_AVAILABLE} ({exc})"
    return count, f"{count:,}"


def _architecture(card: ModelCard | None) -> str:
    if card is None:
        return NOT_AVAILABLE
    if card.architecture is None:
        return "a torch.export program (its own graph; no registered architecture)"
    kwargs = ", ".join(f"{k}={v}" for k, v in card.architecture.kwargs.items())
    return f"{card.architecture.name}({kwargs})"


def _preprocessing(card: ModelCard | None) -> str:
    if card is None:
        return NOT_AVAILABLE
    pre = card.preprocessing
    size = "×".join(str(d) for d in pre.input_size)
    if pre.mean is None:
        norm = "no normalisation: the model takes pixel values in [0, 1]"
    else:
        norm = (
            f"normalised inside the model wrapper as (x − mean) / std, mean {list(pre.mean)}, std {list(pre.std or [])}"
        )
    return f"input {size} (channels × height × width); {norm}"


def _reported(reported: list, metrics: dict[str, MetricLine]) -> list[ReportedLine]:
    """The upstream's numbers beside the measured clean accuracy (or error) where they name one."""
    lines = []
    clean = metrics.get("clean_accuracy")
    for r in reported:
        if r.unit == "percent":
            text = f"{r.value:g} %"
        elif r.unit == "fraction":
            text = f"{r.value:g}"
        else:
            text = f"{r.value:g} of {r.examples:,}"
        if r.examples is not None and r.unit != "count":
            text += f" ({r.examples:,} images)"
        name = r.metric.strip().lower()
        measured, note = None, "not measured by this suite (another attack, budget or a certificate)"
        if clean is not None and name in ("clean accuracy", "clean error", "clean test accuracy"):
            value = clean.value if name != "clean error" else 1 - clean.value
            measured = f"{100 * value:.2f} % ({clean.n:,} images)"
            same = r.examples is not None and r.examples == clean.n
            note = "the same images" if same else "on other images: the suite's first test images"
        lines.append(ReportedLine(r.metric, text, r.split, r.where, measured, note))
    return lines


def _origin(card: ModelCard | None, metrics: dict[str, MetricLine]) -> OriginInfo | None:
    if card is None or card.origin is None:
        return None
    o = card.origin
    repo = http_url(o.repository)
    file_url = None
    if repo is not None and repo.startswith("https://github.com/"):
        file_url = http_url(f"{repo.rstrip('/')}/blob/{o.commit}/{o.path}")
    return OriginInfo(
        repository=o.repository,
        repository_url=repo,
        commit=o.commit,
        path=o.path,
        file_url=file_url,
        sha256=o.sha256,
        license=o.license,
        authors=o.authors,
        paper=(o.paper.title, http_url(o.paper.url)) if o.paper is not None else None,
        training=o.training,
        notes=o.notes,
        reported=_reported(o.reported, metrics),
    )


def _card_fields(card: dict) -> list[tuple[str, str]]:
    """The card's fields with the labels of :data:`CARD_LABELS` (a field the page shows elsewhere, such as
    the architecture, is left out here)."""
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    flat = {
        **{k: v for k, v in card.items() if not isinstance(v, dict)},
        **{f"training.{k}": v for k, v in training.items()},
    }
    fields = []
    for key, label in CARD_LABELS.items():
        value = flat.get(key)
        if value is None:
            continue
        if key == "training.method":
            value = TRAINING_METHODS.get(str(value), value)
        elif key == "training.norm":
            value = {"linf": "L∞", "l2": "L2"}.get(str(value), value)
        elif key == "training.eps" and isinstance(value, float):
            value = f"{value:g}" + (f" ({value * 255:.4g}/255)" if value < 1 else "")
        fields.append((label, str(value)))
    return fields


def run_snippets(card_id: str, dataset: str, suite: str) -> tuple[str, str]:
    """How to run this evaluation again: the ``invarbench eval`` command for the card, and the Python
    call (:func:`invarbench.evaluate_model` on the card's model as :func:`invarbench.models.loading.load_model`
    loads and verifies it, normalisation inside)."""
    command = f"invarbench eval {card_id} --suite {suite}"
    name = card_id.split("/", 1)[-1]
    python = (
        "import invarbench\n"
        "from invarbench.cards import resolve_card\n"
        "from invarbench.models.loading import load_model\n\n"
        f'model = load_model(resolve_card("{card_id}")).wrapper  # checksum verified, normalisation inside\n'
        f'result = invarbench.evaluate_model(model, dataset="{dataset}", suite="{suite}", name="{name}")\n'
        "print(result)  # every metric with its 95 % interval, and the flags"
    )
    return command, python
