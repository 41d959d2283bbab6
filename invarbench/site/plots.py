"""Figures for the leaderboard site: pure functions from stored values to SVG text.

Each function takes plain lists and floats as they are stored in a run's JSON (``None`` marks a
missing value; non-finite floats may also come as their strings, ``"Infinity"``, ``"NaN"``) and
returns a :class:`Plot`: the SVG and a sentence or two of alt text with the numbers that matter.

The figures are drawn with matplotlib's object-oriented API (a bare :class:`~matplotlib.figure.Figure`,
never pyplot) under matplotlib's default style, whatever the user's matplotlibrc says, and are
deterministic byte for byte: no date in the metadata and a fixed ``svg.hashsalt`` for the ids of
clip paths and markers. Text stays text (``svg.fonttype: none``), so labels can be searched and read
by screen readers; the viewer's fonts draw it.

The SVG is the ``<svg>`` element alone, without XML prolog or doctype, so that it can be placed
inline in an HTML page or written to a file as it is. It opens with a ``<title>`` and a ``<desc>``
(the alt text) and has ``role="img"``, except the scatter: points that have an ``href`` are links
(``<a xlink:href=...>``) that open in the same window, and its ``role="group"`` keeps them reachable.
The figures are sized for a phone (4 inches wide, 9 pt text).

matplotlib reads the SVG settings from its global ``rcParams``: each figure is made inside
``matplotlib.style.context``, which restores them afterwards. That is not thread-safe: draw
figures from one thread at a time.
"""

from __future__ import annotations

import io
import math
import re
import statistics
import textwrap
from dataclasses import dataclass, field
from html import escape
from typing import Any

import matplotlib
import matplotlib.patheffects
import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

# Sizes for a phone: a 390 px screen shows about 360 px of figure, and 4 inches (288 pt, 384 px) scaled to
# it keeps 9 pt text at about 11 px.
FIGSIZE = (4.0, 3.0)  # inches
TUBE_FIGSIZE = (4.0, 4.4)
SCATTER_FIGSIZE = (4.0, 4.2)
HASH_SALT = "invarbench"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": HASH_SALT,
    "font.size": 9,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
_RC_TUBE: dict[str, Any] = {"axes.labelsize": 9}
_RC_SCATTER: dict[str, Any] = {"axes.titlesize": 10}
L2_UNIT = "L2, [0, 1] pixel space"
Q_LO_LABEL = "5 %"  # the lower of the quantiles the path_width measurement stores (q_lo)
METHOD_NAMES = {"fmn": "FMN", "search": "boundary search"}
METHOD_COLOURS = {"fmn": "tab:blue", "search": "tab:orange"}
# The training methods of the card schema (invarbench.cards.schema.Training), each its own colour on every board.
GROUP_COLOURS = {
    "standard": "#7f7f7f",
    "pgd-at": "#1f77b4",
    "trades": "#ff7f0e",
    "ccat": "#2ca02c",
    "certified": "#9467bd",
    "adversarial": "#17becf",
    "other": "#8c564b",
}
_SPARE_COLOURS = ("#e377c2", "#bcbd22", "#d62728")
_OTHER_COLOURS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
MAX_BINS = 40
_PAREN = re.compile(r"\s*\([^()]*\)\s*$")  # a name's closing parenthesis: "ResNet-18 (TRADES)" -> "ResNet-18"


@dataclass(frozen=True)
class Plot:
    """A figure: ``svg``, the ``<svg>`` element (no XML prolog), ``alt``, its description, and ``marks``: the
    numbers it marks by name (the tube's ``path_width`` and the number of ``pairs`` it averages over, the
    histogram's ``median``), exactly as drawn."""

    svg: str
    alt: str
    marks: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScatterPoint:
    """One point of :func:`scatter`: ``x`` and ``y`` with their interval (``None``: no bar on that
    side), a ``label`` written beside it, an optional link ``href``, the ``group`` that colours it (the
    model's training method) and whether it is ``highlight``ed (drawn larger, always labelled)."""

    label: str
    x: float
    x_lo: float | None
    x_hi: float | None
    y: float
    y_lo: float | None
    y_hi: float | None
    href: str | None = None
    group: str | None = None
    highlight: bool = False


def _fmt(value: float) -> str:
    """A number for text: three significant digits ("1.49", "0.973", "15")."""
    return f"{value:.3g}"


def _float(value: Any) -> float | None:
    """A stored number as a float (NaN and infinities kept), ``None`` when missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            return float(value)  # "Infinity", "-Infinity", "NaN" (also "inf", "nan")
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    return float(value)


def _finite(value: Any) -> float | None:
    """A stored number as a float, ``None`` when missing or not finite."""
    v = _float(value)
    return v if v is not None and math.isfinite(v) else None


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _no_data(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, f"no data\n({why})", transform=ax.transAxes, ha="center", va="center", color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def _svg(fig: Figure, title: str, alt: str, role: str = "img") -> str:
    """``fig`` as the ``<svg>`` element, with ``<title>`` and ``<desc>``; ``role`` "img" (a picture read
    as its description) or "group" (a figure with links inside, which must stay reachable)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    start = text.index("<svg")
    end = text.index(">", start)
    attrs = f'<svg role="{role}"' if role == "img" else f'<svg role="{role}" aria-label="{escape(title)}"'
    head = text[start:end].replace("<svg", attrs, 1)
    meta = f"\n <title>{escape(title, quote=False)}</title>\n <desc>{escape(alt, quote=False)}</desc>"
    # matplotlib opens each link in a new window; on the site a link behaves like any other.
    body = text[end + 1 :].replace(' target="_blank"', "")
    return head + ">" + meta + body


# --- the equi-confidence tube -------------------------------------------------------------------


def _row(values: Any, length: int, what: str) -> list[Any]:
    """One stored row of ``length`` values; ``None`` (a point that was not reached): all missing."""
    if values is None:
        return [None] * length
    if len(values) != length:
        raise ValueError(f"{what} has {len(values)} values, expected {length}")
    return list(values)


def _cell_edges(centres: list[float]) -> list[float]:
    """Edges of cells around increasing ``centres`` that start at 0: halfway between neighbours, the first
    cell from 0, the last ending at the last centre (so the axis spans exactly 0 to the largest radius)."""
    mids = [(a + b) / 2 for a, b in zip(centres, centres[1:])]
    return [centres[0], *mids, centres[-1]]


def path_width_of(widths: list[list[Any] | None]) -> float | None:
    """The ``path_width`` metric from the stored per-point widths (``widths[k][j]``, pair ``k``, path point
    ``j``; ``None`` where the walk did not reach the point): per pair the mean over its points, then the
    mean over the pairs that have one (docs/measurements.md §3), in L2 pixel units. ``None`` when no pair
    has a width."""
    means = []
    for row in widths:
        ws = [w for w in (_finite(v) for v in (row or [])) if w is not None]
        if ws:
            means.append(math.fsum(ws) / len(ws))
    return _mean(means)


def tube_plot(
    radii: list[float],
    points: list[int],
    q_lo: list[list[list[float | None]]],
    q_hi: list[list[list[float | None]]],
    p0: list[list[float | None]],
    max_pairs: int | None = None,
    *,
    widths: list[list[float | None]] | None = None,
    path_width: float | None = None,
    width_fraction: float = 0.5,
) -> Plot:
    """The equi-confidence tube as the study drew it: path position (x, the NSPGD iteration of each path
    point) against the L2 radius from the path (y), each cell coloured by the ``q_lo`` quantile of the
    source-class confidence there (mean over the pairs with a value; radius 0: the confidence at the point
    itself), on a fixed 0–1 colour scale so that two models' tubes compare.

    ``q_lo[k][j][r]`` and ``q_hi[k][j][r]``: pair ``k``'s 5 % and 95 % quantiles of the source-class
    confidence at path point ``j`` (NSPGD iteration ``points[j]``) over random directions at L2 radius
    ``radii[r]`` (pixel space, [0, 1] scale); ``p0[k][j]``: the confidence at the point itself. A path point a
    pair did not reach is ``None`` (as a whole or value by value); a point no pair reached is left out.
    ``max_pairs``: the first N pairs only (default: all, as the metric). ``widths[k][j]``: the stored width
    of each point (the ``width`` field): the tube's edge, where the pair's ``q_lo`` falls to
    ``width_fraction`` of its value on the path, is drawn as their mean per point. ``path_width``: the
    model's ``path_width`` metric, marked as a horizontal line; default: :func:`path_width_of` ``widths``.
    ``q_hi`` is checked for shape and named in the alt text; the colours are ``q_lo``, the quantile the width
    is read from. Raises ``ValueError`` for rows of the wrong length, radii that are not finite and
    positive, or ``max_pairs < 1``.
    """
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    if not len(q_lo) == len(q_hi) == len(p0):
        raise ValueError(f"q_lo, q_hi and p0 must have one row per pair, got {len(q_lo)}, {len(q_hi)}, {len(p0)}")
    if widths is not None and len(widths) != len(p0):
        raise ValueError(f"widths must have one row per pair, got {len(widths)} for {len(p0)} pairs")
    rs = [_float(r) for r in radii]
    if any(r is None or not math.isfinite(r) or r <= 0 for r in rs):
        raise ValueError(f"radii must be finite and positive, got {radii}")
    n_points, n_radii = len(points), len(rs)
    n_pairs = len(p0) if max_pairs is None else min(max_pairs, len(p0))
    # Say when the figure shows fewer pairs than the path_width metric averages over.
    over = _plural(n_pairs, "pair") if n_pairs == len(p0) else f"the first {n_pairs} of {len(p0)} pairs"
    ys = [0.0, *rs]

    columns = []  # (iteration, pairs with a value, mean q_lo per radius incl. 0, mean width or None)
    for j, it in enumerate(points):
        cells: list[list[float]] = [[] for _ in ys]
        reached = 0
        edge: list[float] = []
        for k in range(n_pairs):
            base = _finite(_row(p0[k], n_points, f"p0[{k}]")[j])
            lo_k = _row(_row(q_lo[k], n_points, f"q_lo[{k}]")[j], n_radii, f"q_lo[{k}][{j}]")
            _row(_row(q_hi[k], n_points, f"q_hi[{k}]")[j], n_radii, f"q_hi[{k}][{j}]")
            vals = [base, *(_finite(v) for v in lo_k)]
            reached += any(v is not None for v in vals)
            for i, v in enumerate(vals):
                if v is not None:
                    cells[i].append(v)
            if widths is not None:
                w = _finite(_row(widths[k], n_points, f"widths[{k}]")[j])
                if w is not None:
                    edge.append(w)
        if reached:
            columns.append((int(it), reached, [_mean(v) for v in cells], _mean(edge)))
    if path_width is None and widths is not None:
        path_width = path_width_of(widths[:n_pairs])
    marked = _finite(path_width)

    title = "Equi-confidence tube around the NSPGD path"
    q_name = f"{Q_LO_LABEL} quantile"
    with matplotlib.style.context(["default", _RC, _RC_TUBE]):
        fig = Figure(figsize=TUBE_FIGSIZE, layout="constrained")
        ax = fig.add_subplot()
        ax.set_gid("tube-axes")
        ax.set_xlabel("path position (NSPGD iteration)")
        ax.set_ylabel(f"radius from the path\n({L2_UNIT})")
        if not columns or not n_radii:
            why = (
                "no pairs"
                if n_pairs == 0
                else "no path points"
                if n_points == 0
                else "no radii"
                if not n_radii
                else "no path point reached"
            )
            _no_data(ax, why)
            alt = f"{title}: no data ({why})."
            return Plot(_svg(fig, title, alt), alt)

        xs = list(range(len(columns)))
        x_edges = [-0.5, *(x + 0.5 for x in xs)]
        y_edges = _cell_edges(ys)
        grid = [[col[2][i] if col[2][i] is not None else math.nan for col in columns] for i in range(len(ys))]
        mesh = ax.pcolormesh(
            x_edges, y_edges, grid, cmap="viridis", vmin=0.0, vmax=1.0, shading="flat", rasterized=False
        )
        mesh.set_edgecolor("face")
        ax.set_xticks(xs, [str(col[0]) for col in columns])
        if len(xs) > 6:  # a phone-width figure: every other iteration named
            for label in ax.get_xticklabels()[1::2]:
                label.set_visible(False)
        ax.set_yticks(ys, [_fmt(y) for y in ys])
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_ylim(0.0, ys[-1])
        bar = fig.colorbar(mesh, ax=ax, location="top", shrink=0.9, aspect=30, pad=0.02)
        bar.set_label(f"{q_name} of the source-class confidence\n(mean over {over})", labelpad=4)
        bar.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0])
        bar.solids.set_rasterized(False)  # vector, as the rest: no embedded PNG (a data: URL) in the page

        handles = []
        edge_pts = [(x, col[3]) for x, col in zip(xs, columns) if col[3] is not None]
        if edge_pts:
            (line,) = ax.plot(
                [x for x, _ in edge_pts],
                [w for _, w in edge_pts],
                color="white",
                linewidth=1.6,
                marker="o",
                markersize=4,
                markerfacecolor="white",
                markeredgecolor="black",
                markeredgewidth=0.6,
                path_effects=[matplotlib.patheffects.withStroke(linewidth=2.8, foreground="black")],
                label=f"tube edge: where the {q_name} falls to\n{_fmt(width_fraction)} × the confidence on the path",
            )
            line.set_gid("tube-edge")
            handles.append(line)
        if marked is not None:
            shown = min(marked, ys[-1])
            mark = ax.axhline(
                shown, color="#d62728", linestyle=(0, (5, 2)), linewidth=1.8, label=f"path width {_fmt(marked)}"
            )
            mark.set_gid("path-width")
            handles.append(mark)
            ax.annotate(
                f"path width {_fmt(marked)}",
                (1.0, shown),
                xycoords=("axes fraction", "data"),
                xytext=(-3, 3 if shown < 0.85 * ys[-1] else -11),
                textcoords="offset points",
                ha="right",
                color="white",
                fontsize=8,
                fontweight="bold",
                path_effects=[matplotlib.patheffects.withStroke(linewidth=2, foreground="#d62728")],
            )
        if handles:
            fig.legend(handles=handles, loc="outside lower center", frameon=False, ncols=1)

        alt = (
            f"{title}: a heat map of the {q_name} of the source-class confidence over path position (NSPGD "
            f"iterations {columns[0][0]} to {columns[-1][0]}, {_plural(len(columns), 'path point')}) and L2 radius "
            f"from the path (0 to {_fmt(ys[-1])}), mean over {over}."
        )
        first, last = columns[0], columns[-1]
        if n_radii and first[2][-1] is not None and last[2][-1] is not None:
            alt += f" At radius {_fmt(ys[-1])} it is {_fmt(first[2][-1])} at iteration {first[0]}"
            alt += f" and {_fmt(last[2][-1])} at iteration {last[0]}." if last is not first else "."
        if edge_pts:
            alt += f" The tube's edge lies at radius {_fmt(edge_pts[0][1])} at iteration {columns[edge_pts[0][0]][0]}"
            alt += (
                f" and {_fmt(edge_pts[-1][1])} at iteration {columns[edge_pts[-1][0]][0]}."
                if len(edge_pts) > 1
                else "."
            )
        if marked is not None:
            alt += f" Path width (the metric, marked): {_fmt(marked)}."
        partial = [f"{it} ({n} of {n_pairs})" for it, n, _, _ in columns if n < n_pairs]
        if partial:
            alt += " Reached by fewer pairs: iteration" + ("s " if len(partial) > 1 else " ") + ", ".join(partial) + "."
        missing = [int(it) for it in points if int(it) not in {c[0] for c in columns}]
        if missing:
            alt += f" Not reached by any pair: iteration{'s' if len(missing) > 1 else ''} "
            alt += ", ".join(str(m) for m in missing) + "."
        marks = {"pairs": float(n_pairs)} | ({"path_width": marked} if marked is not None else {})
        return Plot(_svg(fig, title, alt), alt, marks)


def tube_pairs_text(pairs: int, max_pairs: int | None) -> str:
    """Which pairs a tube averages over, and why their number differs between models: "40 pairs: those of
    the first 100 NSPGD pairs whose source the model classifies correctly (only those walk, §3)" in words.
    ``pairs``: the pairs with a stored tube (the rows of ``p0``); ``max_pairs``: the suite's ``max_pairs``
    (None: all pairs)."""
    which = f"the first {max_pairs} NSPGD pairs" if max_pairs is not None else "the NSPGD pairs"
    return (
        f"mean over {_plural(pairs, 'pair')}: those of {which} whose source image the model classifies "
        "correctly (only those walk), so a less accurate model's tube averages over fewer pairs"
    )


def tube_caption(pairs: int, max_pairs: int | None, path_width: float | None, width_fraction: float = 0.5) -> str:
    """How to read :func:`tube_plot`'s figure, with its numbers: ``pairs`` (the rows of ``p0`` it averages
    over), the suite's ``max_pairs`` (None: all), the marked ``path_width`` (None: not marked) and the
    ``width_fraction`` of the tube's edge. Colour is confidence, not invariance: a model that is unsure
    everywhere is dark everywhere, however wide its tube; the width is where its own confidence halves."""
    width = f" ({_fmt(path_width)})" if path_width is not None else ""
    return (
        "Read it left to right along the NSPGD walk toward an image of another class, and bottom to top away "
        f"from the walk in random directions normal to it. Colour: the {Q_LO_LABEL} quantile of the model's "
        f"confidence in the source class over those directions ({tube_pairs_text(pairs, max_pairs)}); bright "
        "is confident, dark is not, so brightness shows the confidence, not the invariance: a model that is "
        "unsure everywhere is dark everywhere. The width is where the tube's edge lies, relative to the model's "
        f"own confidence: the white line marks where that quantile falls to {_fmt(width_fraction)} × the "
        f"confidence on the path, and the dashed red line is the path width{width}, the mean of those edges "
        "over the points and pairs. A higher edge is a wider tube: a smoother, more invariant model."
    )


# --- minimal adversarial distances --------------------------------------------------------------


def _bins(values: list[float]) -> list[float]:
    """Bin edges from 0 to the largest value: numpy's "auto" number of bins, at most ``MAX_BINS``."""
    import numpy as np

    top = max(values)
    n = len(np.histogram_bin_edges(np.asarray(values, dtype=np.float64), bins="auto", range=(0.0, top))) - 1
    n = min(max(n, 1), MAX_BINS)
    return [top * i / n for i in range(n + 1)]


def _median_text(value: float) -> str:
    return "none found (∞)" if math.isinf(value) else f"{value:.4g}"


def distance_histogram(distances: list[float], methods: list[str] | None = None) -> Plot:
    """The distribution of minimal adversarial L2 distances (the ``min_norm`` measurement), with the
    median the ``median_min_l2_distance`` metric reports.

    ``distances``: per example, the L2 distance in [0, 1] pixel space: 0 for an example misclassified
    clean, infinity where no adversarial example was found, ``None`` or NaN where it is missing. The
    histogram counts the finite positive distances, stacked by ``methods`` (per example: ``"fmn"``,
    ``"search"``, ...) when given; the misclassified examples are a grey bar at 0, left of the axis's
    0, and those without an adversarial example are counted in the text. The dashed line is the median
    over every example with a value, the zeros and the infinities included, as the metric counts them
    (docs/measurements.md §1.2 and §6: the mean of the two middle values for an even count; a median
    among the infinities is infinite, named in the text, not drawn). Missing values are left out of it
    and counted apart. Raises ``ValueError`` when ``methods`` is not one per distance.
    """
    if methods is not None and len(methods) != len(distances):
        raise ValueError(f"methods has {len(methods)} entries, distances {len(distances)}")
    groups: dict[str, list[float]] = {}
    zero = inf = missing = 0
    for i, value in enumerate(distances):
        d = _float(value)
        if d is None or math.isnan(d) or d < 0:
            missing += 1
        elif d == 0:
            zero += 1
        elif math.isinf(d):
            inf += 1
        else:
            groups.setdefault("" if methods is None else str(methods[i]), []).append(d)
    values = [d for ds in groups.values() for d in ds]
    counted = zero + len(values) + inf
    # The metric's median: zeros first, the finite distances, the infinities last.
    median = statistics.median([0.0] * zero + sorted(values) + [math.inf] * inf) if counted else None

    title = "Minimal adversarial L2 distances"
    counts = f"{zero} misclassified clean (distance 0, the grey bar), {inf} without an adversarial example found"
    if missing:
        counts += f", {missing} missing"
    with matplotlib.style.context(["default", _RC]):
        fig = Figure(figsize=FIGSIZE, layout="constrained")
        ax = fig.add_subplot()
        ax.set_gid("histogram-axes")
        ax.set_xlabel(f"minimal adversarial distance ({L2_UNIT})")
        ax.set_ylabel("examples")
        note = f"misclassified (at 0): {zero}\nnone found (∞): {inf}"
        if missing:
            note += f"\nmissing: {missing}"
        if not values:
            _no_data(ax, "no finite positive distance")
            ax.text(0.98, 0.97, note, transform=ax.transAxes, ha="right", va="top", color="0.25")
            alt = (
                f"{title}: no data (no finite positive distance among {_plural(len(distances), 'example')}); {counts}."
            )
            if median is not None:
                alt = alt[:-1] + f"; median over every example {_median_text(median)}."
            return Plot(_svg(fig, title, alt), alt, {"median": median} if median is not None else {})

        order = [m for m in METHOD_NAMES if m in groups] + sorted(m for m in groups if m not in METHOD_NAMES)
        others = iter(_OTHER_COLOURS * (1 + len(order) // len(_OTHER_COLOURS)))
        colours = [METHOD_COLOURS.get(m) or next(others) for m in order]
        labels = [METHOD_NAMES.get(m, m) for m in order]
        edges = _bins(values)
        step = edges[1] - edges[0]
        ax.hist(
            [groups[m] for m in order],
            bins=edges,
            stacked=True,
            color=colours,
            label=labels,
            edgecolor="white",
            linewidth=0.4,
        )
        if zero:
            ax.bar(
                [-step / 2], [zero], width=step, color="0.55", edgecolor="white", linewidth=0.4, label="misclassified"
            )
        assert median is not None  # values is not empty
        if math.isfinite(median):
            line = ax.axvline(median, color="0.2", linestyle="--", linewidth=1, label=f"median {_median_text(median)}")
            line.set_gid("median")
        ax.set_xlim(-step if zero else 0.0, edges[-1])
        ax.text(0.98, 0.97, note, transform=ax.transAxes, ha="right", va="top", color="0.25")
        if not math.isfinite(median):
            ax.text(0.98, 0.6, "median: none found (∞)", transform=ax.transAxes, ha="right", color="0.2")
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="center right", frameon=False)
        ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))

        alt = f"Histogram of the minimal adversarial L2 distance of {_plural(len(values), 'example')} with one found"
        if methods is not None:
            alt += " (by method: " + ", ".join(f"{len(groups[m])} {METHOD_NAMES.get(m, m)}" for m in order) + ")"
        alt += f"; {counts}. Median over all {_plural(counted, 'example')}, as the metric counts them: "
        alt += f"{_median_text(median)}."
        return Plot(_svg(fig, title, alt), alt, {"median": median})


# --- models against each other --------------------------------------------------------------------


def _extent(centre: float, lo: Any, hi: Any) -> tuple[float, float]:
    """The bar's lengths below and above ``centre`` (0 where a bound is missing, not finite or on the wrong side)."""
    a, b = _finite(lo), _finite(hi)
    return (max(0.0, centre - a) if a is not None else 0.0, max(0.0, b - centre) if b is not None else 0.0)


_ARROWS = {
    ("x", "higher"): "better →",
    ("x", "lower"): "← better",
    ("y", "higher"): "better ↑",
    ("y", "lower"): "better ↓",
}
_DIRECTION_ARROWS = {"x": "→", "y": "↑"}


def axis_title(label: str, axis: str, better: str | None, direction: str | None = None) -> str:
    """An axis title that says which way is better: ``label`` (with its unit) and, for ``better``
    ``"higher"`` or ``"lower"``, an arrow toward the better end ("better →", "← better", "better ↑",
    "better ↓"); for ``better`` None, ``direction`` (what larger values mean, say "wider: more
    invariant") after an arrow toward larger values, since neither end is better. ``axis``: "x" or "y"."""
    # A phone-width figure: a long title wraps, and the direction goes on a line of its own.
    label = textwrap.fill(label, 46 if axis == "y" else 44)
    sep = "\n" if axis == "y" or len(label) > 30 else "   "
    if better in ("higher", "lower"):
        return f"{label}{sep}{_ARROWS[(axis, better)]}"
    if direction:
        return f"{label}{sep}{_DIRECTION_ARROWS[axis]} {direction}"
    return label


def group_colour(group: str | None, groups: list[str]) -> str:
    """The colour of a training method (or any group) in the scatters: a fixed one for the card
    schema's methods, so that every board colours them alike, else the next of a spare palette in
    the order of ``groups``."""
    if group in GROUP_COLOURS:
        return GROUP_COLOURS[group]
    spare = [g for g in groups if g not in GROUP_COLOURS]
    return _SPARE_COLOURS[spare.index(group) % len(_SPARE_COLOURS)] if group in spare else "0.4"


POINT_LABEL_CHARS = 26  # the longest label written beside a point (a phone-width figure: about a third of it)


def point_label(name: str, limit: int = POINT_LABEL_CHARS) -> str:
    """The label written beside a scatter point: ``name`` without a closing parenthesis (training details the
    legend and the table under the figure give: "ERAN 6x100 (standard training)" → "ERAN 6x100"), cut at a word
    to at most ``limit`` characters with "…" when still longer; the whole name when nothing would be left."""
    short = _PAREN.sub("", name).strip() or name
    if len(short) <= limit:
        return short
    return textwrap.shorten(short, limit, placeholder="…") if " " in short[:limit] else short[: limit - 1] + "…"


def _label_points(fig: Figure, ax: Axes, points: list[tuple[ScatterPoint, float, float]]) -> None:
    """Write each point's :func:`point_label` beside it, inside the axes and over no other label.

    The labels take no part in the layout (a long one would otherwise squeeze the axes to nothing: matplotlib's
    "constrained_layout not applied" warning); with the axes placed, each label goes to the first of a few
    places right of, left of, above and below its point that lies inside the axes and overlaps no point and
    no label written before it (highlighted points first, then in the given order). A label that fits nowhere
    is shortened once, then left out: the table under the figure names every point."""
    if not points:
        return
    fig.draw_without_rendering()  # place the axes: the labels' room is the axes' box
    box = ax.get_window_extent()
    r = 3.5 * fig.dpi / 72  # about a marker's radius, in display units
    placed = [
        Bbox.from_extents(u - r, v - r, u + r, v + r) for u, v in (ax.transData.transform((x, y)) for _, x, y in points)
    ]
    places = [(5, 3, "left", "bottom"), (-5, 3, "right", "bottom"), (5, -3, "left", "top"), (-5, -3, "right", "top")]
    places += [(0, 7, "center", "bottom"), (0, -7, "center", "top")]
    order = sorted(range(len(points)), key=lambda i: (not points[i][0].highlight, i))
    for i in order:
        p, x, y = points[i]
        for text in dict.fromkeys([point_label(p.label), point_label(p.label, 14)]):
            spot = None
            for dx, dy, ha, va in places:
                label = ax.annotate(
                    text,
                    (x, y),
                    xytext=(dx, dy),
                    textcoords="offset points",
                    ha=ha,
                    va=va,
                    fontsize=8 if not p.highlight else 8.5,
                    color="0.1",
                    fontweight="bold" if p.highlight else "normal",
                )
                label.set_in_layout(False)
                extent = label.get_window_extent()
                inside = extent.x0 >= box.x0 and extent.x1 <= box.x1 and extent.y0 >= box.y0 and extent.y1 <= box.y1
                # A margin of 2 pt: a browser draws the SVG's text with its own font metrics, a little larger.
                kept = extent.padded(2 * fig.dpi / 72)
                if inside and not any(kept.overlaps(other) for other in placed):
                    spot = (label, kept)
                    break
                label.remove()
            if spot is not None:
                placed.append(spot[1])
                if p.href:
                    spot[0].set_url(p.href)
                break


def scatter(
    points: list[ScatterPoint],
    x_label: str,
    y_label: str,
    *,
    title: str | None = None,
    legend_title: str = "training",
    label_limit: int = 20,
) -> Plot:
    """Models as points, ``y`` against ``x``, with interval bars; a point with an ``href`` links there.

    ``x_label``/``y_label``: the axes' titles with their units and the better direction (:func:`axis_title`);
    ``title``: the SVG's ``<title>`` and accessible name (the page shows it as a heading; default "``y_label``
    against ``x_label``"). Points are coloured by their ``group`` (the training method, colours of
    :func:`group_colour`) with a legend under the plot titled ``legend_title``; a ``highlight``ed point is drawn
    larger and ringed. When there are at most ``label_limit`` points (highlighted points: always) each is
    labelled with its :func:`point_label` where that fits inside the axes over no other point or label
    (:func:`_label_points`; a long name never squeezes the axes): the page lists every point in a table beside
    the figure. Points whose ``x`` or ``y`` is missing or not finite are left out (and named in the alt text); a
    missing or non-finite interval bound just draws no bar on that side. The SVG is ``role="group"``, not
    ``img``, so that its links stay reachable for screen readers.
    """
    shown: list[tuple[ScatterPoint, float, float]] = []
    skipped: list[str] = []
    for p in points:
        x, y = _finite(p.x), _finite(p.y)
        if x is None or y is None:
            skipped.append(p.label)
        else:
            shown.append((p, x, y))

    heading = title or f"{y_label} against {x_label}"
    with matplotlib.style.context(["default", _RC, _RC_SCATTER]):
        fig = Figure(figsize=SCATTER_FIGSIZE, layout="constrained")
        ax = fig.add_subplot()
        ax.set_gid("scatter-axes")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        skip_note = ""
        if skipped:
            skip_note = f" Left out for missing or non-finite values: {', '.join(skipped)}."
        if not shown:
            _no_data(ax, "no point with finite values")
            alt = f"Scatter of {heading}: no data, no point with finite values.{skip_note}"
            return Plot(_svg(fig, heading, alt, role="group"), alt)

        known = list(GROUP_COLOURS)
        groups = sorted(
            {p.group for p, _, _ in shown if p.group is not None},
            key=lambda g: (known.index(g) if g in known else len(known), g),
        )
        drawn = []
        for p, x, y in shown:
            xerr, yerr = _extent(x, p.x_lo, p.x_hi), _extent(y, p.y_lo, p.y_hi)
            colour = group_colour(p.group, groups)
            bars = ax.errorbar(
                [x],
                [y],
                xerr=[[xerr[0]], [xerr[1]]],
                yerr=[[yerr[0]], [yerr[1]]],
                fmt="o",
                color=colour,
                markersize=8 if p.highlight else 5,
                markeredgecolor="black" if p.highlight else colour,
                markeredgewidth=1.4 if p.highlight else 0.5,
                capsize=2,
                elinewidth=0.9,
                alpha=0.95,
            )
            drawn.append(bars.lines[0])
        ax.margins(0.12)
        label_all = len(shown) <= label_limit
        for (p, _, _), marker in zip(shown, drawn):
            if p.href:
                marker.set_url(p.href)
        ax.grid(True, linewidth=0.4, alpha=0.5)
        if groups or any(p.group is None for p, _, _ in shown):
            handles = [
                Line2D([], [], marker="o", linestyle="", color=group_colour(g, groups), markersize=6, label=g)
                for g in groups
            ]
            if any(p.group is None for p, _, _ in shown):
                handles.append(Line2D([], [], marker="o", linestyle="", color="0.4", markersize=6, label="unknown"))
            fig.legend(
                handles=handles,
                loc="outside lower center",
                frameon=False,
                ncols=min(len(handles), 3),
                title=legend_title,
                columnspacing=1.0,
                handletextpad=0.3,
            )

        _label_points(fig, ax, [(p, x, y) for p, x, y in shown if label_all or p.highlight])

        described = "; ".join(f"{p.label} ({_fmt(x)}, {_fmt(y)})" for p, x, y in shown[:6])
        if len(shown) > 6:
            described += f"; and {len(shown) - 6} more (listed under the figure)"
        alt = (
            f"Scatter of {heading} for {_plural(len(shown), 'model')} with interval bars, "
            f"as (x, y): {described}.{skip_note}"
        )
        return Plot(_svg(fig, heading, alt, role="group"), alt)


__all__ = [
    "Plot",
    "ScatterPoint",
    "axis_title",
    "distance_histogram",
    "group_colour",
    "path_width_of",
    "scatter",
    "tube_caption",
    "tube_pairs_text",
    "tube_plot",
]
