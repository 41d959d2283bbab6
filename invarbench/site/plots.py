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
(the alt text) and has ``role="img"``. Points of a scatter that have an ``href`` are links
(``<a xlink:href=...>``) that open in the same window.

matplotlib reads the SVG settings from its global ``rcParams``: each figure is made inside
``matplotlib.style.context``, which restores them afterwards. That is not thread-safe: draw
figures from one thread at a time.
"""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass
from html import escape
from typing import Any

import matplotlib
import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

FIGSIZE = (4.8, 3.2)  # inches
HASH_SALT = "invarbench"
_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": HASH_SALT,
    "font.size": 8,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
}
L2_UNIT = "L2, [0, 1] pixel space"
Q_LO_LABEL = "5 %"  # the quantiles the path_width measurement stores as q_lo and q_hi
Q_HI_LABEL = "95 %"
METHOD_NAMES = {"fmn": "FMN", "search": "boundary search"}
METHOD_COLOURS = {"fmn": "tab:blue", "search": "tab:orange"}
_OTHER_COLOURS = ("tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
MAX_BINS = 40


@dataclass(frozen=True)
class Plot:
    """A figure: ``svg``, the ``<svg>`` element (no XML prolog), and ``alt``, its description."""

    svg: str
    alt: str


@dataclass(frozen=True)
class ScatterPoint:
    """One point of :func:`scatter`: ``x`` and ``y`` with their interval (``None``: no bar on that
    side), a ``label`` written beside it and an optional link ``href``."""

    label: str
    x: float
    x_lo: float | None
    x_hi: float | None
    y: float
    y_lo: float | None
    y_hi: float | None
    href: str | None = None


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


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    return fig, fig.add_subplot()


def _no_data(ax: Axes, why: str) -> None:
    ax.text(0.5, 0.5, f"no data\n({why})", transform=ax.transAxes, ha="center", va="center", color="0.35")
    ax.set_xticks([])
    ax.set_yticks([])


def _svg(fig: Figure, title: str, alt: str) -> str:
    """``fig`` as the ``<svg>`` element, with ``<title>`` and ``<desc>``."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    start = text.index("<svg")
    end = text.index(">", start)
    head = text[start:end].replace("<svg", '<svg role="img"', 1)
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


def tube_plot(
    radii: list[float],
    points: list[int],
    q_lo: list[list[list[float | None]]],
    q_hi: list[list[list[float | None]]],
    p0: list[list[float | None]],
    max_pairs: int = 5,
) -> Plot:
    """The equi-confidence tube around NSPGD path points, averaged over the first ``max_pairs`` pairs.

    ``q_lo[k][j][r]`` and ``q_hi[k][j][r]``: pair ``k``'s 5 % and 95 % quantiles of the source-class
    confidence at path point ``j`` (NSPGD iteration ``points[j]``) over random directions at L2 radius
    ``radii[r]``; ``p0[k][j]``: the confidence at the point itself (radius 0). A path point a pair did
    not reach is ``None`` (as a whole or value by value). Each path point gets a band from the mean
    ``q_lo`` to the mean ``q_hi``, the means over the pairs with a value; a point no pair reached is left out.
    """
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    if not len(q_lo) == len(q_hi) == len(p0):
        raise ValueError(f"q_lo, q_hi and p0 must have one row per pair, got {len(q_lo)}, {len(q_hi)}, {len(p0)}")
    rs = [_float(r) for r in radii]
    if any(r is None or not math.isfinite(r) or r <= 0 for r in rs):
        raise ValueError(f"radii must be finite and positive, got {radii}")
    n_points, n_radii = len(points), len(rs)
    n_pairs = min(max_pairs, len(p0))
    # Say when the figure shows fewer pairs than the path_width metric averages over.
    over = _plural(n_pairs, "pair") if n_pairs == len(p0) else f"the first {n_pairs} of {len(p0)} pairs"
    xs = [0.0, *rs]

    bands = []  # (iteration, pairs with a value, lo curve, hi curve), over xs
    for j, it in enumerate(points):
        lo: list[list[float]] = [[] for _ in xs]
        hi: list[list[float]] = [[] for _ in xs]
        pairs_here = 0
        for k in range(n_pairs):
            base = _finite(_row(p0[k], n_points, f"p0[{k}]")[j])
            lo_k = _row(_row(q_lo[k], n_points, f"q_lo[{k}]")[j], n_radii, f"q_lo[{k}][{j}]")
            hi_k = _row(_row(q_hi[k], n_points, f"q_hi[{k}]")[j], n_radii, f"q_hi[{k}][{j}]")
            vals_lo = [base, *(_finite(v) for v in lo_k)]
            vals_hi = [base, *(_finite(v) for v in hi_k)]
            pairs_here += any(v is not None for v in vals_lo + vals_hi)
            for i, (a, b) in enumerate(zip(vals_lo, vals_hi)):
                if a is not None:
                    lo[i].append(a)
                if b is not None:
                    hi[i].append(b)
        if pairs_here:
            bands.append((int(it), pairs_here, [_mean(v) for v in lo], [_mean(v) for v in hi]))

    title = "Equi-confidence tube around the NSPGD path"
    with matplotlib.style.context(["default", _RC]):
        fig, ax = _figure()
        ax.set_xlabel(f"radius from the path point ({L2_UNIT})")
        ax.set_ylabel("confidence in the source class")
        if not bands:
            why = "no pairs" if n_pairs == 0 else "no path points" if n_points == 0 else "no path point reached"
            _no_data(ax, why)
            alt = f"{title}: no data ({why})."
            return Plot(_svg(fig, title, alt), alt)

        cmap = matplotlib.colormaps["viridis"]
        handles = []
        for idx, (it, n, lo_curve, hi_curve) in enumerate(bands):
            colour = cmap(0.9 * idx / max(1, len(bands) - 1))
            x_lo = [x for x, v in zip(xs, lo_curve) if v is not None]
            x_hi = [x for x, v in zip(xs, hi_curve) if v is not None]
            ax.plot(x_lo, [v for v in lo_curve if v is not None], color=colour, linewidth=0.9)
            ax.plot(x_hi, [v for v in hi_curve if v is not None], color=colour, linewidth=0.9)
            both = [(x, a, b) for x, a, b in zip(xs, lo_curve, hi_curve) if a is not None and b is not None]
            if both:
                ax.fill_between(
                    [x for x, _, _ in both],
                    [a for _, a, _ in both],
                    [b for _, _, b in both],
                    color=colour,
                    alpha=0.15,
                    linewidth=0,
                )
            label = f"iteration {it}" if n == n_pairs else f"iteration {it} ({n} of {n_pairs})"
            handles.append(Patch(facecolor=colour, edgecolor=colour, alpha=0.6, label=label))
        ax.set_xlim(0, xs[-1] if n_radii else 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{Q_LO_LABEL}–{Q_HI_LABEL} quantiles, mean over {over}", loc="left")
        ax.grid(True, linewidth=0.4, alpha=0.5)
        fig.legend(handles=handles, loc="outside right center", title="path point", frameon=False)

        alt = (
            f"{title}: the {Q_LO_LABEL} to {Q_HI_LABEL} quantiles of the source-class confidence at L2 radii "
            f"up to {_fmt(xs[-1])} around {_plural(len(bands), 'path point')} (NSPGD iterations "
            f"{bands[0][0]} to {bands[-1][0]}), mean over {over}."
        )
        ends = [(it, lo_curve[-1]) for it, _, lo_curve, _ in bands if n_radii and lo_curve[-1] is not None]
        if ends:
            (it_a, a), (it_b, b) = ends[0], ends[-1]
            alt += f" At radius {_fmt(xs[-1])} the {Q_LO_LABEL} quantile is {_fmt(a)} at iteration {it_a}"
            alt += f" and {_fmt(b)} at iteration {it_b}." if it_b != it_a else "."
        missing = [int(it) for it in points if int(it) not in {b[0] for b in bands}]
        if missing:
            alt += f" Not reached by any pair: iteration{'s' if len(missing) > 1 else ''} "
            alt += ", ".join(str(m) for m in missing) + "."
        return Plot(_svg(fig, title, alt), alt)


# --- minimal adversarial distances --------------------------------------------------------------


def _bins(values: list[float]) -> list[float]:
    """Bin edges from 0 to the largest value: numpy's "auto" number of bins, at most ``MAX_BINS``."""
    import numpy as np

    top = max(values)
    n = len(np.histogram_bin_edges(np.asarray(values, dtype=np.float64), bins="auto", range=(0.0, top))) - 1
    n = min(max(n, 1), MAX_BINS)
    return [top * i / n for i in range(n + 1)]


def distance_histogram(distances: list[float], methods: list[str] | None = None) -> Plot:
    """The distribution of minimal adversarial L2 distances (the ``min_norm`` measurement).

    The histogram counts the finite positive distances; 0 (misclassified clean) and infinity (no
    adversarial example found) are counted in the text, and so are missing values (``None``, NaN or
    negative). With ``methods`` (per example: ``"fmn"``, ``"search"``, ...), the bars are stacked by
    the method that found the distance.
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

    title = "Minimal adversarial L2 distances"
    counts = f"{zero} misclassified clean (distance 0), {inf} without an adversarial example found"
    if missing:
        counts += f", {missing} missing"
    with matplotlib.style.context(["default", _RC]):
        fig, ax = _figure()
        ax.set_xlabel(f"minimal adversarial distance ({L2_UNIT})")
        ax.set_ylabel("examples")
        note = f"distance 0 (misclassified): {zero}\nnone found (inf): {inf}"
        if missing:
            note += f"\nmissing: {missing}"
        if not values:
            _no_data(ax, "no finite positive distance")
            ax.text(0.98, 0.97, note, transform=ax.transAxes, ha="right", va="top", color="0.25")
            alt = (
                f"{title}: no data (no finite positive distance among {_plural(len(distances), 'example')}); {counts}."
            )
            return Plot(_svg(fig, title, alt), alt)

        order = [m for m in METHOD_NAMES if m in groups] + sorted(m for m in groups if m not in METHOD_NAMES)
        others = iter(_OTHER_COLOURS * (1 + len(order) // len(_OTHER_COLOURS)))
        colours = [METHOD_COLOURS.get(m) or next(others) for m in order]
        labels = [METHOD_NAMES.get(m, m) for m in order]
        edges = _bins(values)
        median = statistics.median(values)
        ax.hist(
            [groups[m] for m in order],
            bins=edges,
            stacked=True,
            color=colours,
            label=labels,
            edgecolor="white",
            linewidth=0.4,
        )
        ax.axvline(median, color="0.2", linestyle="--", linewidth=1, label=f"median {_fmt(median)}")
        ax.set_xlim(0, edges[-1])
        ax.text(0.98, 0.97, note, transform=ax.transAxes, ha="right", va="top", color="0.25")
        ax.legend(loc="center right", frameon=False)
        ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))

        alt = (
            f"Histogram of the minimal adversarial L2 distance of {_plural(len(values), 'example')} "
            f"(median {_fmt(median)})"
        )
        if methods is not None:
            alt += " by method: " + ", ".join(f"{len(groups[m])} {METHOD_NAMES.get(m, m)}" for m in order)
        alt += f"; {counts}."
        return Plot(_svg(fig, title, alt), alt)


# --- sensitivity against invariance --------------------------------------------------------------


def _extent(centre: float, lo: Any, hi: Any) -> tuple[float, float]:
    """The bar's lengths below and above ``centre`` (0 where a bound is missing, not finite or on the wrong side)."""
    a, b = _finite(lo), _finite(hi)
    return (max(0.0, centre - a) if a is not None else 0.0, max(0.0, b - centre) if b is not None else 0.0)


def scatter(points: list[ScatterPoint], x_label: str, y_label: str) -> Plot:
    """Models as points, ``y`` against ``x``, with interval bars and each point labelled; a point with
    an ``href`` links there. Points whose ``x`` or ``y`` is missing or not finite are left out (and
    named in the alt text); a missing or non-finite interval bound just draws no bar on that side."""
    shown: list[tuple[ScatterPoint, float, float]] = []
    skipped: list[str] = []
    for p in points:
        x, y = _finite(p.x), _finite(p.y)
        if x is None or y is None:
            skipped.append(p.label)
        else:
            shown.append((p, x, y))

    title = f"{y_label} against {x_label}"
    with matplotlib.style.context(["default", _RC]):
        fig, ax = _figure()
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        skip_note = ""
        if skipped:
            skip_note = f" Left out for missing or non-finite values: {', '.join(skipped)}."
        if not shown:
            _no_data(ax, "no point with finite values")
            alt = f"Scatter of {title}: no data, no point with finite values.{skip_note}"
            return Plot(_svg(fig, title, alt), alt)

        cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        drawn = []
        for i, (p, x, y) in enumerate(shown):
            xerr, yerr = _extent(x, p.x_lo, p.x_hi), _extent(y, p.y_lo, p.y_hi)
            bars = ax.errorbar(
                [x],
                [y],
                xerr=[[xerr[0]], [xerr[1]]],
                yerr=[[yerr[0]], [yerr[1]]],
                fmt="o",
                color=cycle[i % len(cycle)],
                markersize=5,
                capsize=2,
                elinewidth=0.9,
            )
            drawn.append(bars.lines[0])
        ax.margins(0.12)
        left, right = ax.get_xlim()
        for (p, x, y), marker in zip(shown, drawn):
            # A label right of its point, or left of it in the right third, so that it stays in the figure.
            on_left = right > left and (x - left) / (right - left) > 2 / 3
            text = ax.annotate(
                p.label,
                (x, y),
                xytext=(-4 if on_left else 4, 4),
                textcoords="offset points",
                ha="right" if on_left else "left",
                fontsize=7,
                color="0.15",
            )
            if p.href:
                marker.set_url(p.href)
                text.set_url(p.href)
        ax.grid(True, linewidth=0.4, alpha=0.5)

        described = "; ".join(f"{p.label} ({_fmt(x)}, {_fmt(y)})" for p, x, y in shown[:6])
        if len(shown) > 6:
            described += f"; and {len(shown) - 6} more"
        alt = (
            f"Scatter of {title} for {_plural(len(shown), 'model')} with interval bars, "
            f"as (x, y): {described}.{skip_note}"
        )
        return Plot(_svg(fig, title, alt), alt)


__all__ = ["Plot", "ScatterPoint", "distance_histogram", "scatter", "tube_plot"]
