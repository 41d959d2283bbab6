"""The site's figures (invarbench.site.plots): deterministic, valid SVG with searchable text and alt
text whose numbers follow from the input, a "no data" figure for empty input, and figures from a
published result file."""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import pytest

from invarbench.site.plots import Plot, ScatterPoint, distance_histogram, scatter, tube_plot
from invarbench.store.codec import decode_floats

SVG = "{http://www.w3.org/2000/svg}"
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
}


def _tube(**changes) -> Plot:
    return tube_plot(**{**TUBE, **changes})


def _points() -> list[ScatterPoint]:
    return [
        ScatterPoint("model A", 0.25, 0.2, 0.3, 8.0, 7.5, 8.5, "runs/a.html?x=1&y=2"),
        ScatterPoint("model B", 0.75, None, 0.8, 6.0, 5.0, math.inf, None),
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
    assert root.get("role") == "img"
    assert root[0].tag == f"{SVG}title" and root[0].text
    assert root[1].tag == f"{SVG}desc" and root[1].text == first.alt
    assert "Date" not in first.svg and "<dc:date>" not in first.svg
    assert root.get("width") == "345.6pt" and root.get("height") == "230.4pt"  # 4.8 x 3.2 inches
    assert first.alt.endswith(".") and len(first.alt) < 600


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


def test_the_tube_averages_over_the_pairs_with_a_value():
    plot = _tube()
    texts = _texts(plot)
    assert "radius from the path point (L2, [0, 1] pixel space)" in texts
    assert "confidence in the source class" in texts
    assert "iteration 0" in texts and "iteration 10 (1 of 2)" in texts
    assert "5 %–95 % quantiles, mean over 2 pairs" in texts
    # At radius 2: the 5 % quantile is mean(0.6, 0.4) = 0.5 at iteration 0, and 0.2 (pair 0 alone) at 10.
    assert "up to 2 around 2 path points (NSPGD iterations 0 to 10), mean over 2 pairs." in plot.alt
    assert "At radius 2 the 5 % quantile is 0.5 at iteration 0 and 0.2 at iteration 10." in plot.alt


def test_the_tube_takes_the_first_max_pairs_pairs_and_says_which_points_no_pair_reached():
    plot = _tube(max_pairs=1, q_lo=[[[0.8, 0.6], None]], q_hi=[[[1.0, 0.9], None]], p0=[[1.0, None]])
    assert "around 1 path point (NSPGD iterations 0 to 0), mean over 1 pair." in plot.alt
    assert "0.6 at iteration 0." in plot.alt and "Not reached by any pair: iteration 10." in plot.alt
    assert "iteration 10" not in _texts(plot)
    # The second pair (which would change the mean) is not read.
    assert _tube(max_pairs=1).alt.count("0.6 at iteration 0") == 1


def test_the_tube_skips_missing_values_value_by_value():
    q_lo = [[[0.8, None], [0.5, 0.2]], [[0.6, 0.4], None]]
    assert "0.4 at iteration 0" in _tube(q_lo=q_lo).alt
    q_lo = [[["NaN", 0.6], [0.5, 0.2]], [[0.6, "Infinity"], None]]  # stored strings: skipped as non-finite
    assert "0.6 at iteration 0" in _tube(q_lo=q_lo).alt


def test_the_tube_refuses_inputs_of_the_wrong_shape():
    with pytest.raises(ValueError, match="one row per pair"):
        _tube(p0=TUBE["p0"][:1])
    with pytest.raises(ValueError, match=r"q_lo\[0\]\[1\] has 1 values, expected 2"):
        _tube(q_lo=[[[0.8, 0.6], [0.5]], [[0.6, 0.4], None]])
    with pytest.raises(ValueError, match="max_pairs"):
        _tube(max_pairs=0)
    with pytest.raises(ValueError, match="radii"):
        _tube(radii=[1.0, math.inf])


def test_the_histogram_counts_zero_infinite_and_missing_distances_apart():
    plot = _histogram()
    # Finite positive: 1, 2, 4, 3 (median 2.5): 2 by FMN, 2 by the boundary search.
    assert plot.alt == (
        "Histogram of the minimal adversarial L2 distance of 4 examples (median 2.5) by method: 2 FMN, "
        "2 boundary search; 1 misclassified clean (distance 0), 2 without an adversarial example found, 1 missing."
    )
    texts = _texts(plot)
    assert "minimal adversarial distance (L2, [0, 1] pixel space)" in texts and "examples" in texts
    assert {"FMN", "boundary search", "median 2.5"} <= set(texts)
    assert {"distance 0 (misclassified): 1", "none found (inf): 2", "missing: 1"} <= set(texts)
    assert "0.25" not in texts  # counts of examples: whole numbers


def test_the_histogram_without_methods():
    plot = distance_histogram([0.5, 1.5, 0.0, 1.0])
    assert plot.alt == (
        "Histogram of the minimal adversarial L2 distance of 3 examples (median 1); "
        "1 misclassified clean (distance 0), 0 without an adversarial example found."
    )
    assert "FMN" not in _texts(plot)
    with pytest.raises(ValueError, match="methods has 1 entries, distances 2"):
        distance_histogram([1.0, 2.0], ["fmn"])


def test_the_scatter_links_its_points_and_leaves_out_the_ones_without_values():
    plot = _scatter()
    texts = _texts(plot)
    assert {"robust accuracy (fraction)", "path width (L2 radius)", "model A", "model B"} <= set(texts)
    assert "model C" not in texts and "model D" not in texts
    links = [a.get(XLINK_HREF) for a in _root(plot).iter(f"{SVG}a")]
    assert links == ["runs/a.html?x=1&y=2"] * 2  # model A's marker and label; C is left out, B has no link
    assert '<a xlink:href="runs/a.html?x=1&amp;y=2">' in plot.svg and "_blank" not in plot.svg
    assert plot.alt == (
        "Scatter of path width (L2 radius) against robust accuracy (fraction) for 2 models with interval bars, "
        "as (x, y): model A (0.25, 8); model B (0.75, 6). Left out for missing or non-finite values: model C, model D."
    )


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
        "1 misclassified clean (distance 0), 1 without an adversarial example found."
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
    values, settings = published
    pw, mn = values["path_width"], values["min_norm"]
    radii, points = settings["radii"], settings["points"]

    tube = tube_plot(radii, points, pw["q_lo"], pw["q_hi"], pw["p0"], max_pairs=5)
    lo = [row[0][-1] for row in pw["q_lo"][:5] if row[0] is not None]
    last = [row[-1][-1] for row in pw["q_lo"][:5] if row[-1] is not None]
    assert f"radii up to {radii[-1]:.3g} around {len(points)} path points" in tube.alt
    assert f"NSPGD iterations {points[0]} to {points[-1]}), mean over the first 5 of {len(pw['p0'])} pairs." in tube.alt
    assert f"quantile is {statistics.fmean(lo):.3g} at iteration {points[0]}" in tube.alt
    assert f"and {statistics.fmean(last):.3g} at iteration {points[-1]}." in tube.alt
    assert f"iteration {points[0]}" in _texts(tube)
    assert tube.svg == tube_plot(radii, points, pw["q_lo"], pw["q_hi"], pw["p0"]).svg

    hist = distance_histogram(mn["distance"], mn["method"])
    d = mn["distance"]
    finite = [x for x in d if 0 < x < math.inf]
    assert len(d) == 1000 and len(finite) > 900
    assert hist.alt.startswith(
        f"Histogram of the minimal adversarial L2 distance of {len(finite)} examples "
        f"(median {statistics.median(finite):.3g}) by method: "
    )
    assert hist.alt.endswith(
        f"; {d.count(0.0)} misclassified clean (distance 0), {d.count(math.inf)} without an adversarial example found."
    )
    assert d.count(0.0) == mn["method"].count("misclassified")
