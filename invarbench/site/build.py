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
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

import invarbench
from invarbench.cards.catalog import CardRef
from invarbench.cards.schema import ModelCard
from invarbench.errors import InvarbenchError, ValidationError
from invarbench.measurements import metric_specs
from invarbench.site.compare import compare_page_path
from invarbench.site.correlations import ModelPoint, board_correlations
from invarbench.store.db import CUSTOM_DATA, Store, best_full_runs, newest_unranked, suite_file_examples
from invarbench.store.document_checks import check_name, http_url, inside
from invarbench.store.export import csv_text, dumps, import_path, run_document
from invarbench.store.provenance import PROVENANCE_FIELDS
from invarbench.store.schema import RunRecord
from invarbench.submissions import FAILED, PENDING, SubmissionStatus, SuiteTarget, derive_statuses

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
    statuses: dict[str, SubmissionStatus] = field(default_factory=dict)  # every given card's, by id
    # Do the board's axes agree? Rank correlations over its ranked models (invarbench.site.correlations).
    correlations: list = field(default_factory=list)  # BoardCorrelation
    # What was measured, in plain words (invarbench.site.protocol): from the settings its runs recorded, else
    # the registered suite's when it has this version; empty when neither is known.
    protocol: list = field(default_factory=list)  # ProtocolLine
    description: str = ""  # the suite's one-line description, when registered with this version

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

    Its ranked rows are the newest full run of each model with that suite version, by
    :data:`RANK_METRIC`, then clean accuracy, with :func:`shared_ranks`; its unranked rows, listed
    apart, are the smoke and custom-data runs of that suite version (:meth:`Store.unranked_runs`), by
    model card id and data; its submissions, the status of each of the registered ``cards`` of its data
    set with that suite version (:func:`invarbench.submissions.derive_statuses`) that is not evaluated:
    pending (no full run of the file the card pins, or one running) or failed (with the stored error).
    Returns the boards.
    """
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
        full = next((r.full_examples for r in [*rows, *unranked] if r.full_examples), None)
        full = full or suite_file_examples(suite, dataset, version)
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
    """A board's protocol lines (:func:`invarbench.site.protocol.protocol_lines`) and its suite's description:
    from the settings and data digest a ranked run recorded, else from the registered suite when it has this
    version (its description too); ([], "") when neither is known."""
    from invarbench.site.protocol import protocol_lines
    from invarbench.suites import load_suite

    try:
        registered = load_suite(suite, dataset)
    except InvarbenchError:  # a suite this installation does not have (an imported run's)
        registered = None
    current = registered if registered is not None and registered.version == version else None
    description = current.description if current is not None else ""
    if recorded is not None:
        return protocol_lines(recorded[1], digest=recorded[2]), description
    return (protocol_lines(current.settings()) if current is not None else []), description


SCATTER_X, SCATTER_Y = "median_min_l2_distance", "path_width"


def board_scatter(board: DatasetBoard) -> Figure | None:
    """Sensitivity against invariance for a board's ranked models: the median minimal L2 distance against
    the path width, with their 95 % intervals, each point linking to its model page; None without data."""
    from invarbench.site import plots

    points = []
    for row in board.rows:
        x, y = row.metrics.get(SCATTER_X), row.metrics.get(SCATTER_Y)
        if x is None or y is None:
            continue
        href = model_page_path(board, row.card_id)
        points.append(plots.ScatterPoint(row.name, x.value, x.ci_low, x.ci_high, y.value, y.ci_low, y.ci_high, href))
    if not points:
        return None
    labels = {c.metric: c.label for c in metric_columns()}
    plot = plots.scatter(
        points,
        f"{labels[SCATTER_X]} (sensitivity: higher is less sensitive)",
        f"{labels[SCATTER_Y]} (invariance around the NSPGD path)",
    )
    return Figure("Sensitivity against invariance", plot.svg, plot.alt)


def _generated(store: Store) -> str:
    """The site's date: that of its newest finished run (so that the same database builds the same bytes)."""
    times = [st.run.finished_at for st in store.standings() if st.run.finished_at is not None]
    return max(times).strftime("%Y-%m-%d %H:%M UTC") if times else "no runs yet"


def build_site(store: Store, out: Path, cards_dir: Path | None = None) -> Path:
    """:func:`render_site` into a temporary sibling folder of ``out`` that then replaces ``out`` in one rename,
    under a lock (:func:`invarbench.site.publish.publish_site`: nothing of an earlier build survives; a second
    build into ``out`` at the same time fails with one line). Returns ``out/index.html``."""
    from invarbench.site.publish import publish_site

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
    pages = model_pages(store, boards, runs)
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


def build_site_from_results(results: Path, out: Path, cards_dir: Path | None = None) -> Path:
    """Build the site from published results files (``leaderboard/results/``), imported into a throwaway
    SQLite database, so that a deploy needs no database. Raises what the import raises for a bad file."""
    with tempfile.TemporaryDirectory(prefix="invarbench-site-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'results.db'}")
        try:
            import_path(store, results)
            return build_site(store, out, cards_dir)
        finally:
            store.close()


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
    """A picture of a page: inline SVG text (made by :mod:`invarbench.site.plots`) and its alt text."""

    title: str
    svg: str
    alt: str


@dataclass(frozen=True)
class StripPanel:
    """One image of an NSPGD strip: what it is ("source", "step 6", "end (step 17)", "target"), the
    model's confidence in the source class there (softmax probability) and its predicted class."""

    label: str
    p_source: float
    predicted: int
    left: int  # where the panel starts in the strip's PNG, in pixels


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


STRIP_NAME = re.compile(r"^nspgd-strip-\d{5}\.(png|json)$")


def _strips(run: RunRecord, folder: str) -> list[ImageStrip]:
    """The run's image strips, by pair; a strip whose JSON or PNG is missing or malformed (an imported
    file of someone else's) is left out rather than shown wrong. ``folder``: where the page finds the PNGs."""
    from PIL import Image, UnidentifiedImageError

    from invarbench.measurements.images import GAP_PX

    files = {a.name: a.data for a in run.artifacts if STRIP_NAME.match(a.name)}
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
                StripPanel(str(p["label"]), float(p["p_source"]), int(p["predicted"]), k * (panel_width + GAP_PX))
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
        alt = (
            f"NSPGD walk of pair {pair}: a class-{src} source (source-class confidence {panels[0].p_source:.3f}) "
            f"and {len(panels) - 3} images along the walk to its end point after {steps} steps (confidence "
            f"{end.p_source:.3f}, predicted class {end.predicted}), then the class-{tgt} target; the distance to "
            f"the target fell from {start_d:.2f} to {end_d:.2f} (L2)."
        )
        caption = (
            f"Pair {pair}: example {doc['source']} (class {src}) toward example {doc['target']} (class {tgt}); "
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


def model_page_path(board: DatasetBoard, card_id: str) -> str:
    """Where a model's page of a board lives, relative to the site's root."""
    return f"models/{board.slug}/{card_id.split('/', 1)[-1]}.html"


def _per_example(store: Store, run_id: int) -> dict[str, dict[str, list]]:
    from invarbench.evaluation.measure import merge_batches  # the site reads values as the aggregation does

    return merge_batches(values for _, values in sorted(store.stored_batches(run_id).items()))


def _figures(run: RunRecord, values: dict[str, dict[str, list]]) -> list[Figure]:
    from invarbench.site import plots

    figures = []
    pw = values.get("path_width")
    settings = (run.suite_settings or {}).get("measurements", {}).get("path_width")
    if pw and settings and pw.get("pair"):
        plot = plots.tube_plot(settings["radii"], settings["points"], pw["q_lo"], pw["q_hi"], pw["p0"])
        figures.append(Figure("Equi-confidence tube", plot.svg, plot.alt))
    mn = values.get("min_norm")
    if mn and mn.get("distance"):
        plot = plots.distance_histogram(mn["distance"], mn.get("method"))
        figures.append(Figure("Minimal adversarial L2 distances", plot.svg, plot.alt))
    return figures


def _stored_card(run: RunRecord) -> ModelCard | None:
    """The card a run stored (``card_yaml``), read by the card loader and validated by the card schema; None
    when it is not a valid card (then the page shows no card fields and no links from it)."""
    from invarbench.cards.catalog import card_from_data, parse_card_yaml

    try:
        return card_from_data(parse_card_yaml(run.model.card_yaml, f"run {run.id}"), f"run {run.id}")
    except ValidationError:
        return None


def model_pages(store: Store, boards: list[DatasetBoard], runs: dict[int, RunRecord] | None = None) -> list[ModelPage]:
    """One page per ranked run of every board (``runs``: the ranked runs already read, by id)."""
    from invarbench.measurements import flag_docs
    from invarbench.measurements.human_invariance import breakdown as human_breakdown

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
            fields = [
                (key, str(card[key]))
                for key in ("id", "name", "dataset", "num_classes", "format", "license", "submitted_by", "notes")
                if card.get(key) is not None
            ]
            training = card.get("training") if isinstance(card.get("training"), dict) else {}
            fields += [(f"training.{k}", str(v)) for k, v in training.items()]
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
                )
            )
    return pages
