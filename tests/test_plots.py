"""The site's figures (invarbench.site.plots): deterministic, valid SVG with searchable text and alt
text whose numbers follow from the input, a "no data" figure for empty input, and figures from a
published result file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import pytest

from invarbench.site.plots import (
    Plot,
    ScatterPoint,
    axis_title,
    distance_histogram,
    path_width_of,
    scatter,
    tube_plot,
)
from invarbench.store.codec import decode_floats

SVG = "{http://www.w3.org/2000/svg}"

# A figure whose layout collapsed (matplotlib draws it anyway, squeezed) is an error here.
pytestmark = pytest.mark.filterwarnings("error:constrained_layout not applied:UserWarning")
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
RESULT = next(
    (Path(__file__).resolve().parents[1] / "leaderboard/results/mnist5k").glob("lenet-standard__standard-v*.json")
)

# Two pairs, two path points (iterations 0 and 10), radii 1 and 2; pair 1 did not reach iteration 10.
TUBE = {
    "radii": [1.0, 2.0],
    "points": [0, 10],
    "q_lo": [[[0.8, 0.6], [0.5, 0.2]], [[0.6, 0.4], None]],
    "q_hi": [[[1.0, 0.9], [0.9, 0.7]], [[0.9, 0.8], None]],
    "p0": [[1.0, 0.9], [0.95, None]],
    "widths": [[1.5, 1.0], [1.2, None]],
}


def _tube(**changes) -> Plot:
    return tube_plot(**{**TUBE, **changes})


def _points() -> list[ScatterPoint]:
    return [
        ScatterPoint("model A", 0.25, 0.2, 0.3, 8.0, 7.5, 8.5, "runs/a.html?x=1&y=2", group="pgd-at"),
        ScatterPoint("model B", 0.75, None, 0.8, 6.0, 5.0, math.inf, None, group="standard"),
        ScatterPoint("model C", math.nan, None, None, 1.0, None, None, "runs/c.html"),
        ScatterPoint("model D", 0.5, None, None, None, None, None, None),
    ]


def _scatter() -> Plot:
    return scatter(_points(), "robust accuracy (fraction)", "path width (L2 radius)")


def _histogram() -> Plot:
    distances = [0.0, math.inf, 1.0, 2.0, 4.0, None, 3.0, "Infinity"]
    methods = ["misclassified", "none", "fmn", "fmn", "search", "none", "search", "none"]
    return distance_histogram(distances, methods)


FIGURES = {"tube": _tube, "histogram": _histogram, "scatter": _scatter}


def _root(plot: Plot) -> ET.Element:
    root = ET.fromstring(plot.svg)
    assert root.tag == f"{SVG}svg"
    return root


def _texts(plot: Plot) -> list[str]:
    return ["".join(el.itertext()).strip() for el in _root(plot).iter(f"{SVG}text")]


@pytest.mark.parametrize("name", FIGURES)
def test_a_figure_is_deterministic_valid_svg_with_its_alt_text_as_title_and_description(name):
    first, second = FIGURES[name](), FIGURES[name]()
    assert first.svg == second.svg and first.alt == second.alt
    assert first.svg.startswith("<svg ") and "<?xml" not in first.svg and "<!DOCTYPE" not in first.svg
    root = _root(first)
    # The scatter's points are links: role="group" keeps them reachable for screen readers.
    assert root.get("role") == ("group" if name == "scatter" else "img")
    assert root[0].tag == f"{SVG}title" and root[0].text
    assert root[1].tag == f"{SVG}desc" and root[1].text == first.alt
    assert "Date" not in first.svg and "<dc:date>" not in first.svg
    assert "<image" not in first.svg and "data:" not in first.svg  # vector only: no embedded raster
    assert root.get("width") == "288pt"  # 4 inches: about a phone's width, so that 9 pt text stays legible
    assert first.alt.endswith(".") and len(first.alt) < 800


def test_the_figures_do_not_depend_on_the_process():
    """Another interpreter, with another hash seed and the user's own matplotlib style, draws the same bytes."""
    script = (
        f"import hashlib, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_plots as t\n"
        "import matplotlib; matplotlib.rcParams['font.size'] = 20; matplotlib.rcParams['svg.hashsalt'] = None\n"
        "print(' '.join(hashlib.sha256(f().svg.encode()).hexdigest() for f in t.FIGURES.values()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    here = " ".join(hashlib.sha256(f().svg.encode()).hexdigest() for f in FIGURES.values())
    assert out.stdout.strip() == here


def test_drawing_leaves_matplotlib_settings_as_they_were():
    before = dict(matplotlib.rcParams)
    for make in FIGURES.values():
        make()
    assert dict(matplotlib.rcParams) == before


def _axis_map(root: ET.Element, axes: str, axis: str) -> tuple[float, float]:
    """The linear map from data to SVG coordinates on one axis of the axes ``<g id=axes>``, from its tick
    marks' positions and their labels: (scale, offset) with ``svg = scale * data + offset``."""
    group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == axes)
    ticks = []
    for tick in group.iter(f"{SVG}g"):
        if not (tick.get("id") or "").startswith(f"{axis}tick_"):
            continue
        use = tick.find(f".//{SVG}use")
        label = "".join(t for text in tick.iter(f"{SVG}text") for t in text.itertext()).strip()
        if use is None or not label:
            continue
        ticks.append((float(label.replace("−", "-")), float(use.get(axis))))
    (d0, p0), (d1, p1) = ticks[0], ticks[-1]
    scale = (p1 - p0) / (d1 - d0)
    return scale, p0 - scale * d0


def _line_position(root: ET.Element, gid: str, axis: str) -> float:
    """The SVG coordinate of the straight line drawn with ``gid`` along ``axis`` (x: a vertical line, y: a
    horizontal one)."""
    group = next(g for g in root.iter(f"{SVG}g") if g.get("id") == gid)
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", group.find(f"{SVG}path").get("d"))]
    values = numbers[0::2] if axis == "x" else numbers[1::2]
    assert max(values) - min(values) < 1e-6, values  # straight along the other axis
    return values[0]


def _marked(plot: Plot, axes: str, gid: str, axis: str) -> float:
    """The data value at which ``plot`` draws its line ``gid``, read back from the SVG."""
    root = _root(plot)
    scale, offset = _axis_map(root, axes, axis)
    return (_line_position(root, gid, axis) - offset) / scale


def test_the_tube_is_a_heat_map_of_path_position_against_radius_with_the_edge_and_the_path_width():
    plot = _tube()
    texts = _texts(plot)
    assert "path position (NSPGD iteration)" in texts
    assert "radius from the path\n(L2, [0, 1] pixel space)" in texts or any("radius from the path" in t for t in texts)
    assert "5 % quantile of the source-class confidence" in texts and "(mean over 2 pairs)" in texts
    assert {"0", "10"} <= set(texts)  # the path points' iterations name the columns
    # Pair 0: widths 1.5 and 1.0 (mean 1.25); pair 1: 1.2 (its second point not reached): path width 1.225.
    assert plot.marks == {"pairs": 2, "path_width": pytest.approx(1.225, abs=1e-12)}  # the pairs it averages
    assert "path width 1.23" in texts
    assert _marked(plot, "tube-axes", "path-width", "y") == pytest.approx(1.225, abs=1e-3)
    # At radius 2 the 5 % quantile is mean(0.6, 0.4) = 0.5 at iteration 0, and 0.2 (pair 0 alone) at 10.
    assert "At radius 2 it is 0.5 at iteration 0 and 0.2 at iteration 10." in plot.alt
    # The edge: mean width per point, 1.35 at iteration 0 and 1 at iteration 10.
    assert "The tube's edge lies at radius 1.35 at iteration 0 and 1 at iteration 10." in plot.alt
    assert "Reached by fewer pairs: iteration 10 (1 of 2)." in plot.alt
    # One coloured cell per path point and radius (0, 1, 2), with no translucent bands stacked.
    assert "fill-opacity" not in plot.svg


def test_the_tube_marks_the_metric_it_is_given_over_the_widths():
    assert _tube(path_width=1.7).marks == {"pairs": 2, "path_width": 1.7}
    assert _marked(_tube(path_width=1.7), "tube-axes", "path-width", "y") == pytest.approx(1.7, abs=1e-3)
    assert _tube(widths=None).marks == {"pairs": 2} and "path width" not in _tube(widths=None).alt
    assert path_width_of([[1.5, 1.0], [1.2, None], None, [None, None]]) == pytest.approx(1.225)
    assert path_width_of([None]) is None


def test_the_tubes_caption_says_colour_is_confidence_and_names_its_pairs_and_path_width():
    from invarbench.site.plots import tube_caption

    plot = _tube()
    text = tube_caption(int(plot.marks["pairs"]), 100, plot.marks["path_width"], 0.5)
    assert "mean over 2 pairs: those of the first 100 NSPGD pairs whose source image the model classifies" in text
    assert "brightness shows the confidence, not the invariance" in text
    assert "falls to 0.5 × the confidence on the path" in text and "the path width (1.23)" in text
    one = tube_caption(1, None, None, 0.25)
    assert "mean over 1 pair: those of the NSPGD pairs whose" in one and "falls to 0.25 ×" in one
    assert "the path width," in one  # no number when none is marked


def test_the_tube_takes_the_first_max_pairs_pairs_and_says_which_points_no_pair_reached():
    plot = _tube(
        max_pairs=1, q_lo=[[[0.8, 0.6], None]] * 2, q_hi=[[[1.0, 0.9], None]] * 2, p0=[[1.0, None]] * 2, widths=None
    )
    assert "(NSPGD iterations 0 to 0, 1 path point)" in plot.alt and "mean over the first 1 of 2 pairs." in plot.alt
    assert "Not reached by any pair: iteration 10." in plot.alt
    # The second pair (which would change the mean) is not read.
    assert "At radius 2 it is 0.6 at iteration 0 and 0.2 at iteration 10." in _tube(max_pairs=1).alt
    assert _tube(max_pairs=1).marks == {"pairs": 1, "path_width": 1.25}


def test_the_tube_skips_missing_values_value_by_value():
    q_lo = [[[0.8, None], [0.5, 0.2]], [[0.6, 0.4], None]]
    assert "it is 0.4 at iteration 0" in _tube(q_lo=q_lo).alt
    q_lo = [[["NaN", 0.6], [0.5, 0.2]], [[0.6, "Infinity"], None]]  # stored strings: skipped as non-finite
    assert "it is 0.6 at iteration 0" in _tube(q_lo=q_lo).alt


def test_the_tube_refuses_inputs_of_the_wrong_shape():
    with pytest.raises(ValueError, match="one row per pair"):
        _tube(p0=TUBE["p0"][:1])
    with pytest.raises(ValueError, match=r"q_lo\[0\]\[1\] has 1 values, expected 2"):
        _tube(q_lo=[[[0.8, 0.6], [0.5]], [[0.6, 0.4], None]])
    with pytest.raises(ValueError, match="widths must have one row per pair"):
        _tube(widths=[[1.0, 1.0]])
    with pytest.raises(ValueError, match="max_pairs"):
        _tube(max_pairs=0)
    with pytest.raises(ValueError, match="radii"):
        _tube(radii=[1.0, math.inf])


def test_the_histogram_counts_zero_infinite_and_missing_distances_apart():
    plot = _histogram()
    # Finite positive: 1, 2, 4, 3 (2 by FMN, 2 by the boundary search); with the 0 and the two infinities the
    # metric's median over 7 values (0, 1, 2, 3, 4, inf, inf) is 3.
    assert plot.alt == (
        "Histogram of the minimal adversarial L2 distance of 4 examples with one found (by method: 2 FMN, "
        "2 boundary search); 1 misclassified clean (distance 0, the grey bar), 2 without an adversarial example "
        "found, 1 missing. Median over all 7 examples, as the metric counts them: 3."
    )
    assert plot.marks == {"median": 3.0}
    texts = _texts(plot)
    assert "minimal adversarial distance (L2, [0, 1] pixel space)" in texts and "examples" in texts
    assert {"FMN", "boundary search", "median 3", "misclassified"} <= set(texts)
    assert {"misclassified (at 0): 1", "none found (∞): 2", "missing: 1"} <= set(texts)
    assert "0.25" not in texts  # counts of examples: whole numbers
    assert _marked(plot, "histogram-axes", "median", "x") == pytest.approx(3.0, abs=0.02)


def test_the_histogram_without_methods():
    plot = distance_histogram([0.5, 1.5, 0.0, 1.0])
    assert plot.alt == (
        "Histogram of the minimal adversarial L2 distance of 3 examples with one found; "
        "1 misclassified clean (distance 0, the grey bar), 0 without an adversarial example found. "
        "Median over all 4 examples, as the metric counts them: 0.75."
    )
    # A median among the infinities is the metric's too: infinite, said, not drawn.
    many = distance_histogram([1.0, math.inf, math.inf])
    assert many.marks == {"median": math.inf} and many.alt.endswith("as the metric counts them: none found (∞).")
    assert "FMN" not in _texts(plot)
    with pytest.raises(ValueError, match="methods has 1 entries, distances 2"):
        distance_histogram([1.0, 2.0], ["fmn"])


def test_the_scatter_links_its_points_and_leaves_out_the_ones_without_values():
    plot = _scatter()
    texts = _texts(plot)
    assert {"robust accuracy (fraction)", "path width (L2 radius)", "model A", "model B"} <= set(texts)
    assert "model C" not in texts and "model D" not in texts
    assert {"training", "pgd-at", "standard"} <= set(texts)  # the legend of training methods
    links = [a.get(XLINK_HREF) for a in _root(plot).iter(f"{SVG}a")]
    assert links == ["runs/a.html?x=1&y=2"] * 2  # model A's marker and label; C is left out, B has no link
    assert '<a xlink:href="runs/a.html?x=1&amp;y=2">' in plot.svg and "_blank" not in plot.svg
    assert plot.alt == (
        "Scatter of path width (L2 radius) against robust accuracy (fraction) for 2 models with interval bars, "
        "as (x, y): model A (0.25, 8); model B (0.75, 6). Left out for missing or non-finite values: model C, model D."
    )


def test_the_scatter_has_a_heading_axis_titles_with_the_better_direction_and_colours_by_method():
    x = axis_title("Robust accuracy (L∞) (%)", "x", "higher")
    y = axis_title("Path width (L2 radius, [0, 1] pixel space)", "y", None, "wider: more invariant")
    assert x == "Robust accuracy (L∞) (%)   better →"
    assert y == "Path width (L2 radius, [0, 1] pixel space)\n↑ wider: more invariant"
    assert axis_title("ECE (probability)", "y", "lower") == "ECE (probability)\nbetter ↓"
    points = [
        ScatterPoint(f"m{i}", float(i), None, None, float(i % 3), None, None, f"m{i}.html", group=g)
        for i, g in enumerate(["standard", "pgd-at", "trades", "pgd-at"] * 6)
    ]
    plot = scatter(points, x, y, title="Sensitivity against invariance")
    root = _root(plot)
    assert root.get("role") == "group" and root.get("aria-label") == "Sensitivity against invariance"
    assert root.find(f"{SVG}title").text == "Sensitivity against invariance"
    texts = _texts(plot)
    assert any(t.startswith("Robust accuracy (L∞) (%)") and t.endswith("better →") for t in texts)
    assert {"standard", "pgd-at", "trades", "training"} <= set(texts)
    assert "m0" not in texts  # 24 points, over scatter's label_limit: no labels; the page lists them in a table
    colours = {g: plots_group_colour(g) for g in ("standard", "pgd-at", "trades")}
    assert len(set(colours.values())) == 3
    # Every point is a link, labelled or not.
    assert len([a for a in root.iter(f"{SVG}a")]) == 24


def plots_group_colour(group: str) -> str:
    from invarbench.site.plots import group_colour

    return group_colour(group, [])


@pytest.mark.parametrize(
    "plot",
    [
        pytest.param(lambda: tube_plot([], [], [], [], []), id="tube-nothing"),
        pytest.param(lambda: tube_plot([1.0], [0], [], [], []), id="tube-no-pairs"),
        pytest.param(lambda: _tube(q_lo=[[None, None]] * 2, q_hi=[[None, None]] * 2, p0=[None] * 2), id="tube-none"),
        pytest.param(lambda: distance_histogram([]), id="histogram-nothing"),
        pytest.param(lambda: distance_histogram([0.0, math.inf, math.nan], None), id="histogram-no-finite"),
        pytest.param(lambda: scatter([], "x (unit)", "y (unit)"), id="scatter-nothing"),
        pytest.param(lambda: scatter(_points()[2:], "x (unit)", "y (unit)"), id="scatter-no-finite"),
    ],
)
def test_empty_input_gives_a_figure_that_says_no_data(plot):
    result = plot()
    assert "no data" in result.alt
    assert any(t.startswith("no data") for t in _texts(result))
    assert _root(result).find(f"{SVG}desc").text == result.alt


def test_the_empty_figures_say_why():
    assert tube_plot([1.0], [0], [], [], []).alt == "Equi-confidence tube around the NSPGD path: no data (no pairs)."
    assert distance_histogram([0.0, "Infinity"]).alt == (
        "Minimal adversarial L2 distances: no data (no finite positive distance among 2 examples); "
        "1 misclassified clean (distance 0, the grey bar), 1 without an adversarial example found; "
        "median over every example none found (∞)."
    )
    assert scatter(_points()[2:], "x", "y").alt == (
        "Scatter of y against x: no data, no point with finite values. "
        "Left out for missing or non-finite values: model C, model D."
    )


@pytest.fixture(scope="module")
def published():
    """The published result's per-example values, batches joined, and its path_width settings."""
    run = decode_floats(json.loads(RESULT.read_text()))
    values: dict[str, dict[str, list]] = {}
    for batch in sorted(run["examples"], key=lambda b: (b["measurement"], b["batch_start"])):
        for key, vals in batch["values"].items():
            values.setdefault(batch["measurement"], {}).setdefault(key, []).extend(vals)
    return values, run["run"]["suite_settings"]["measurements"]["path_width"]


def test_figures_of_a_published_result(published):
    """The tube marks the run's path_width and the histogram the run's median_min_l2_distance, as the
    suite's own aggregation computes them from the same per-example values."""
    import torch

    from invarbench.metrics.stats import mean_metric, median_metric

    values, settings = published
    pw, mn = values["path_width"], values["min_norm"]
    radii, points = settings["radii"], settings["points"]
    doc = json.loads(RESULT.read_text())
    stored = {m["name"]: m["value"] for m in decode_floats(doc["metrics"])}

    tube = tube_plot(radii, points, pw["q_lo"], pw["q_hi"], pw["p0"], widths=pw["width"])
    expected = mean_metric(
        "path_width", torch.tensor([w for w in pw["mean_width"] if w is not None], dtype=torch.float64)
    )
    assert tube.marks["path_width"] == pytest.approx(expected.value, rel=1e-12)
    assert tube.marks["path_width"] == pytest.approx(stored["path_width"], rel=1e-12)
    assert _marked(tube, "tube-axes", "path-width", "y") == pytest.approx(stored["path_width"], abs=0.01)
    assert f"radius from the path (0 to {radii[-1]:.3g}), mean over {len(pw['p0'])} pairs." in tube.alt
    assert f"Path width (the metric, marked): {stored['path_width']:.3g}." in tube.alt
    lo = [row[0][-1] for row in pw["q_lo"] if row[0] is not None]
    assert f"At radius {radii[-1]:.3g} it is {statistics.fmean(lo):.3g} at iteration {points[0]}" in tube.alt

    hist = distance_histogram(mn["distance"], mn["method"])
    d = mn["distance"]
    metric = median_metric("median_min_l2_distance", torch.tensor(d, dtype=torch.float64))
    assert hist.marks["median"] == metric.value == stored["median_min_l2_distance"]
    assert _marked(hist, "histogram-axes", "median", "x") == pytest.approx(metric.value, abs=0.01)
    finite = [x for x in d if 0 < x < math.inf]
    assert len(d) == 1000 and len(finite) > 900
    assert hist.alt.endswith(f"Median over all 1000 examples, as the metric counts them: {metric.value:.4g}.")
    # The misclassified examples (distance 0) are in the median: without them it would be another number.
    assert d.count(0.0) == mn["method"].count("misclassified") > 0
    assert statistics.median(finite) != pytest.approx(metric.value, abs=1e-3)


# The names of the published MNIST board's models (leaderboard/results/mnist): long ones, some alike.
LONG_NAMES = [
    'MadryCNN tiny, no max-pool (BaB-Attack "MNIST Small-Adv")',
    "ConvMed (COLT certified training, L∞ ε=0.1)",
    "ERAN ConvSmall (standard training)",
    "ERAN 6x100 (standard training)",
    "ERAN 6x200 (standard training)",
    "ERAN 9x100 (standard training)",
    "ERAN 9x200 (standard training)",
    "CNN-A-Adv (SDP-FO; adversarially trained)",
    "Wong & Kolter CNN (certified training, L∞ ε=0.1)",
    "Wong et al. small CNN, cascade stage 0 (certified training, L∞ ε=0.3)",
]


def _axes_box(plot: Plot) -> tuple[float, float, float, float]:
    """The scatter's axes as (x0, y0, x1, y1) in the SVG's points: its background patch, the axes group's
    first path."""
    axes = next(g for g in _root(plot).iter(f"{SVG}g") if g.get("id") == "scatter-axes")
    d = next(axes.iter(f"{SVG}path")).get("d")
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", d)]
    xs, ys = numbers[0::2], numbers[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def test_long_point_labels_never_squeeze_the_axes():
    """Ten points named as the published MNIST board's models: no "constrained_layout not applied" warning,
    the axes keep most of the figure, and each label written is the short form of its point's name."""
    import warnings

    from invarbench.site.plots import SCATTER_FIGSIZE, point_label

    assert point_label("ERAN 6x100 (standard training)") == "ERAN 6x100"
    assert (
        point_label("Wong et al. small CNN, cascade stage 0 (certified training, L∞ ε=0.3)")
        == "Wong et al. small CNN,…"
    )
    assert point_label("(only a parenthesis)") == "(only a parenthesis)"
    assert len(point_label("x" * 40)) == 26
    points = [
        ScatterPoint(
            name, 0.8 + 0.25 * i, None, None, 5.7 + (i * 7 % 10) * 0.5, None, None, f"m{i}.html", group="standard"
        )
        for i, name in enumerate(LONG_NAMES)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "constrained_layout not applied" is a UserWarning
        plot = scatter(points, "Median min. L2 distance (L2 distance, [0, 1] pixel space)   better →", "Path width")
    x0, y0, x1, y1 = _axes_box(plot)
    width, height = (72 * v for v in SCATTER_FIGSIZE)
    assert x1 - x0 > 0.6 * width and y1 - y0 > 0.4 * height, (x0, y0, x1, y1)
    texts = set(_texts(plot))
    labels = texts & {point_label(n) for n in LONG_NAMES} | texts & {point_label(n, 14) for n in LONG_NAMES}
    assert len(labels) >= 6  # most fit; one that fits nowhere is left out, never drawn over another
    assert not texts & set(LONG_NAMES)
