"""The compare page of a board: two or more of its ranked models side by side (docs/site.md, "Comparing
models").

One static page per board, ``compare-<board>.html`` at the site's root (beside ``index.html``, so that the
board's scatters and their links read the same as on the index). The models to show are named in the URL,
``compare-<board>.html?models=<name>,<name>``, where a name is the model's card id after its data set (the
file name of its page: ``models/<board>/<name>.html``); the page's checkboxes change the choice and the URL
with it, so a comparison can be shared. Without ``models`` it shows the board's two best-ranked models.

The page holds every ranked model of the board (its metrics, its tube, its first NSPGD strip) and a few
lines of JavaScript show the chosen ones and highlight their points on the board's scatters; without
JavaScript it says how to compare instead. The tubes are the model pages' own figures, written once per
model as ``boards/<board>/tubes/<name>.svg`` and shown here as images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from invarbench.site.build import Column, DatasetBoard, Figure, ModelPage

TUBE_TITLE = "Equi-confidence tube"  # the model page's figure that the compare page shows


def tube_path(page: ModelPage) -> str:
    """Where the compare page finds a model page's tube as a file, relative to the site's root:
    ``boards/<board>/tubes/<name>.svg`` (beside the board's downloads; the model page's own folder holds
    only what its run stored)."""
    return f"boards/{page.board}/tubes/{Path(page.path).stem}.svg"


def compare_page_path(board: DatasetBoard) -> str:
    """Where a board's compare page lives, relative to the site's root: ``compare-<board>.html``."""
    return f"compare-{board.slug}.html"


@dataclass(frozen=True)
class CompareCell:
    """One metric of one model: the value and its 95 % interval as text (the interval "" when not stored), and
    the caveat of each of the model's flags that concerns it (:func:`invarbench.site.boards.caveats`)."""

    value: str
    interval: str
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComparePicture:
    """An image on the compare page: ``src`` relative to the site's root, its alt text and caption."""

    src: str
    alt: str
    caption: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class StripEnd:
    """Where a model's NSPGD walk on the compare page ends, as its model page says it (the strip's panels,
    read from the run's artifact, not recomputed): the end panel's ``label`` ("end (step 25)"), the class
    the model predicts there (``predicted``, its name: "truck", "class 7"), its confidence in the source
    class there and at the source (softmax probabilities in [0, 1]), and the source class's name."""

    label: str
    predicted: str
    confidence: float
    start_confidence: float
    source_class: str


def strip_end(strip) -> StripEnd | None:  # a build.ImageStrip
    """The end point of an NSPGD strip (its panel before the target's), or None when it has fewer than
    three panels (source, end, target)."""
    if len(strip.panels) < 3:
        return None
    start, end = strip.panels[0], strip.panels[-2]
    return StripEnd(end.label, end.predicted_name, end.p_source, start.p_source, start.predicted_name)


@dataclass(frozen=True)
class CompareModel:
    """One ranked model of the board as the compare page shows it."""

    name: str  # the id in the URL: the card id after its data set
    card_id: str
    title: str  # the card's display name
    short: str  # the heading of its column on a phone (:func:`short_titles`)
    href: str  # its page, relative to the site's root
    rank: int
    training: str
    family: str
    flags: list[tuple[str, str, str]]  # (flag, its short badge, what it means)
    cells: dict[str, CompareCell]  # by metric
    tube: ComparePicture | None = None
    strip: ComparePicture | None = None
    strip_end: StripEnd | None = None  # the strip's end point: predicted class and source-class confidence


@dataclass(frozen=True)
class ComparePage:
    """A board's compare page: its models (rank order), its metric columns, its scatters."""

    path: str
    board: str  # the slug
    title: str  # "mnist5k · standard v4"
    columns: list[Column]
    models: list[CompareModel]
    scatters: list[Figure] = field(default_factory=list)
    default: list[str] = field(default_factory=list)  # shown when the URL names none: the two best-ranked


def _cell(cell, percent: bool, caveats: tuple[str, ...]) -> CompareCell:  # a build.MetricCell
    scale, fmt = (100.0, "{:.1f}") if percent else (1.0, "{:.3f}")
    unit = " %" if percent else ""
    value = fmt.format(scale * cell.value) + unit
    if cell.ci_low is None or cell.ci_high is None:
        return CompareCell(value, "", caveats)
    interval = f"[{fmt.format(scale * cell.ci_low)}, {fmt.format(scale * cell.ci_high)}]"  # in the value's unit
    return CompareCell(value, interval, caveats)


def _notes(concerns: dict, metric: str) -> tuple[str, ...]:
    """The caveats on ``metric`` (``concerns``: :func:`invarbench.site.boards.caveats`), each as its first clause
    and the flag's badge: "likely too optimistic (masking?)"."""
    return tuple(
        f"{i.caveat.split(':', 1)[0]} ({i.label})" for i in [*concerns.get(metric, []), *concerns.get("*", [])]
    )


def short_titles(titles: list[str]) -> list[str]:
    """Short names for the models ``titles`` of one board, for the compare table's headings on a phone: each
    its scatter label (:func:`invarbench.site.plots.point_label`: no closing parenthesis, at most 26
    characters); models whose labels coincide get the clauses of their parenthesis that tell them apart
    ("Wong et al. CIFAR small,… (L∞ 8/255)" and "… (L2 36/255)"), and where even that leaves two alike, their
    full names. Same length and order as ``titles``."""
    from invarbench.site.plots import point_label

    def clauses(title: str) -> list[str]:
        match = re.search(r"\(([^()]*)\)\s*$", title)
        return [c.strip() for c in re.split(r"[;,]", match.group(1))] if match else []

    labels = [point_label(t) for t in titles]
    out = list(labels)
    for label in set(labels):
        same = [i for i, x in enumerate(labels) if x == label]
        if len(same) < 2:
            continue
        common = set.intersection(*(set(clauses(titles[i])) for i in same))
        for i in same:
            own = [c for c in clauses(titles[i]) if c and c not in common]
            out[i] = f"{label} ({', '.join(own)})" if own else titles[i]
    return [t if out.count(s) > 1 else s for s, t in zip(out, titles, strict=True)]


def _tube_caption(figure: Figure) -> str:
    """A tube's caption on the compare page: the pairs it averages over (why another model's count differs)
    and the path width it marks, from the numbers the model page's figure drew (``Figure.marks``)."""
    from invarbench.site.plots import _fmt, tube_pairs_text

    if "pairs" not in figure.marks:
        return ""
    max_pairs = figure.marks.get("max_pairs")
    text = tube_pairs_text(int(figure.marks["pairs"]), int(max_pairs) if max_pairs is not None else None)
    text = text[0].upper() + text[1:]
    if "path_width" in figure.marks:
        text += f"; path width {_fmt(figure.marks['path_width'])} (the dashed red line)"
    return text + "."


def compare_pages(boards: list[DatasetBoard], pages: list[ModelPage]) -> list[ComparePage]:
    """One compare page per board with at least two ranked models, from the boards and the model pages
    built for them (their tube figures and strips)."""
    from invarbench.measurements import flag_docs
    from invarbench.site.boards import caveats, flag_info
    from invarbench.site.build import board_scatters, model_page_path

    docs = flag_docs()
    by_path = {p.path: p for p in pages}
    out = []
    for board in boards:
        if len(board.rows) < 2:
            continue
        models = []
        shorts = short_titles([row.name for row in board.rows])
        for row, rank, short in zip(board.rows, board.ranks, shorts, strict=True):
            href = model_page_path(board, row.card_id)
            page = by_path.get(href)
            tube = strip = end = None
            if page is not None:
                figure = next((f for f in page.figures if f.title == TUBE_TITLE), None)
                if figure is not None:
                    tube = ComparePicture(tube_path(page), figure.alt, _tube_caption(figure))
                if page.strips:
                    s = page.strips[0]
                    strip = ComparePicture(f"{str(Path(href).parent)}/{s.src}", s.alt, s.caption, s.width, s.height)
                    end = strip_end(s)
            cols = {c.metric: c for c in board.columns}
            concerns = caveats(list(row.flags), docs)

            flags = [(f, (info := flag_info(f, docs)).label, info.explanation) for f in row.flags]
            models.append(
                CompareModel(
                    name=row.card_id.split("/", 1)[-1],
                    card_id=row.card_id,
                    title=row.name,
                    short=short,
                    href=href,
                    rank=rank,
                    training=row.training,
                    family=getattr(row, "family", ""),
                    flags=flags,
                    cells={
                        m: _cell(c, cols[m].percent if m in cols else False, _notes(concerns, m))
                        for m, c in row.metrics.items()
                    },
                    tube=tube,
                    strip=strip,
                    strip_end=end,
                )
            )
        out.append(
            ComparePage(
                path=compare_page_path(board),
                board=board.slug,
                title=f"{board.dataset} · {board.suite} v{board.version}",
                columns=list(board.columns),
                models=models,
                scatters=board_scatters(board),
                default=[m.name for m in models[:2]],
            )
        )
    return out


def tube_files(pages: list[ModelPage]) -> dict[str, str]:
    """The tube figure of each model page as a stand-alone SVG file: path relative to the site's root ->
    SVG text (the model page's own figure, the same bytes it shows inline)."""
    files = {}
    for page in pages:
        figure = next((f for f in page.figures if f.title == TUBE_TITLE), None)
        if figure is not None:
            files[tube_path(page)] = figure.svg
    return files
