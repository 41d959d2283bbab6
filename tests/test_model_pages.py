"""Model pages a researcher can cite, and the pictures that read (docs/site.md, "A page per model").

Checked against independent computations: the parameter count against the safetensors library's own
reading of the file, the weights' sha256 against hashlib, the tube's marked path width and the
histogram's median against the suite's aggregation (read back from the SVG's coordinates), the
scatter's correlation against SciPy, the "how to run this" Python snippet by running it. A browser test
checks that a model page has no horizontal page scroll on a 390 px phone.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import math
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from site_fixtures import BOARD, FLAGGED, board_results, board_site, board_store  # fixtures
from test_plots import SVG, _marked

from invarbench.site.build import (
    build_site,
    build_site_from_results,
    flag_metrics,
    safetensors_parameters,
)
from invarbench.store.codec import decode_floats
from invarbench.store.documents import content_digest, dumps

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "leaderboard" / "results"
CARDS = REPO / "model_cards"
STANDARD = RESULTS / "mnist5k" / "lenet-standard__standard-v5.json"
PAGE = "models/mnist5k-standard-v5/lenet-standard.html"

# A figure whose layout collapsed (matplotlib draws it anyway, squeezed) is an error here.
pytestmark = pytest.mark.filterwarnings("error:constrained_layout not applied:UserWarning")


@pytest.fixture(scope="module")
def published_site(tmp_path_factory) -> Path:
    """The site of the published results, with the checkout's cards folder (which holds their weights)."""
    out = tmp_path_factory.mktemp("published") / "site"
    build_site_from_results(RESULTS, out, CARDS)
    return out


def _svgs(page: str) -> dict[str, str]:
    """The page's inline SVG figures by their <title>."""
    found = {}
    for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S):
        title = ET.fromstring(svg).find(f"{SVG}title").text
        found[title] = svg
    return found


class _Svg:
    """A stand-in for plots.Plot: what tests/test_plots.py's _marked reads."""

    def __init__(self, svg: str) -> None:
        self.svg = svg


def _stored_metrics(path: Path) -> dict[str, float]:
    return {m["name"]: m["value"] for m in decode_floats(json.loads(path.read_text())["metrics"])}


# --- the model: architecture, parameters, sha256 -------------------------------------------------------


def test_a_model_page_shows_architecture_parameters_preprocessing_and_sha256(published_site):
    from safetensors import safe_open

    page = (published_site / PAGE).read_text()
    weights = CARDS / "mnist5k" / "lenet-standard.safetensors"
    with safe_open(str(weights), framework="pt") as f:  # the library's own reading of the header
        expected = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 - no __iter__
    assert expected > 1000
    assert f'id="parameters" data-count="{expected}">{expected:,}</td>' in page
    assert safetensors_parameters(weights) == expected
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f'<td id="weights-sha256"><code class="hash">{sha}</code>' in page
    assert '<td id="architecture"><code>lenet(num_classes=10, in_channels=1, input_size=28)</code>' in page
    assert "input 1×28×28 (channels × height × width); no normalisation" in page
    # Card fields with labels a reader knows, never raw YAML keys.
    assert '<th scope="row">Training method</th><td>standard (no adversarial training)</td>' in page
    assert "training.method" not in page and "submitted_by" not in page
    # Board and rank at the top, before the metrics.
    standing = re.search(r'<p class="standing" id="standing">(.*?)</p>', page).group(1)
    assert re.search(r"Rank <strong>\d</strong> of 2 on the board <a [^>]*>mnist5k · standard v5</a>", standing)
    assert page.index('id="standing"') < page.index("<h2>Metrics</h2>")
    assert "<code>mnist5k/lenet-standard</code> · standard (no adversarial training)" in page


def test_the_parameter_count_says_why_it_is_not_available(tmp_path):
    empty = tmp_path / "no-cards"
    empty.mkdir()
    build_site_from_results(RESULTS, tmp_path / "a", empty)
    page = (tmp_path / "a" / PAGE).read_text()
    assert '<td id="parameters">not available (the cards folder has no lenet-standard.safetensors)</td>' in page
    # A cards folder whose file is not the run's: its header would count another model.
    other = tmp_path / "other" / "mnist5k"
    other.mkdir(parents=True)
    shutil.copy(CARDS / "mnist5k" / "lenet-pgd-at.safetensors", other / "lenet-standard.safetensors")
    build_site_from_results(RESULTS, tmp_path / "b", tmp_path / "other")
    page = (tmp_path / "b" / PAGE).read_text()
    assert (
        "not available (the cards folder&#39;s lenet-standard.safetensors is another file than the run&#39;s)" in page
    )


def _header(obj: object) -> bytes:
    raw = json.dumps(obj).encode()
    return len(raw).to_bytes(8, "little") + raw


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x00", "shorter than a safetensors header"),
        ((200_000_000).to_bytes(8, "little"), "longer than safetensors allows"),
        ((10).to_bytes(8, "little") + b"{", "cut short"),
        ((4).to_bytes(8, "little") + b"nope", "not JSON"),
        (_header([]), "not a JSON object"),
        (_header({"w": {"dtype": "F32", "shape": [2, -1]}}), "tensor 'w' has no valid shape"),
        (_header({"w": {"dtype": "F32", "shape": "2x2"}}), "tensor 'w' has no valid shape"),
    ],
)
def test_the_safetensors_header_reader_refuses_what_is_not_a_header(tmp_path, data, message):
    path = tmp_path / "x.safetensors"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        safetensors_parameters(path)


@pytest.mark.parametrize("path", sorted(CARDS.glob("*/*.safetensors")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_header_reader_counts_what_safetensors_reads_for_every_shipped_model(path):
    from safetensors import safe_open

    if path.stat().st_size < 200 and path.read_bytes().startswith(b"version https://git-lfs"):
        pytest.skip("a Git LFS pointer: the weights are not checked out")
    with safe_open(str(path), framework="pt") as f:
        expected = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 - no __iter__
    assert safetensors_parameters(path) == expected > 0


def test_the_header_reader_counts_every_tensor_and_skips_the_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5), "c": torch.zeros(0, 7)}, str(path), metadata={"k": "v"})
    assert safetensors_parameters(path) == 12 + 5 + 0


# --- the pictures mark the metrics -----------------------------------------------------------------------


def test_the_tube_marks_the_path_width_and_the_histogram_the_metrics_median(published_site):
    page = (published_site / PAGE).read_text()
    figures = _svgs(page)
    stored = _stored_metrics(STANDARD)
    tube = _Svg(html_lib.unescape(figures["Equi-confidence tube around the NSPGD path"]))
    assert _marked(tube, "tube-axes", "path-width", "y") == pytest.approx(stored["path_width"], abs=0.01)
    assert f"path width {stored['path_width']:.3g}" in tube.svg
    hist = _Svg(html_lib.unescape(figures["Minimal adversarial L2 distances"]))
    median = stored["median_min_l2_distance"]
    assert _marked(hist, "histogram-axes", "median", "x") == pytest.approx(median, abs=0.01)
    assert f"median {median:.4g}" in hist.svg
    # The page's metric line and the caption say the same number.
    assert f"{median:.4f}" in page and f"as the metric counts them: {median:.4g}." in page
    assert "The grey bar at 0 counts the examples misclassified" in page


def test_a_flag_puts_a_caveat_on_the_numbers_it_concerns(board_site):
    assert FLAGGED
    page = (board_site / "models" / BOARD / f"{FLAGGED[0]}.html").read_text()
    flags = re.findall(r'<li><span class="flag">([a-z_]+)</span>', page)
    assert flags
    rows = dict(re.findall(r'<code class="ci">([a-z0-9_]+)</code></td>\n<td class="num">(.*?)</td>', page))
    for name, cell in rows.items():
        concerned = any(name in flag_metrics(f, list(rows)) for f in flags)
        assert ("⚠" in cell) == concerned, name
    assert any("⚠" in cell for cell in rows.values())
    assert "Numbers it concerns, marked ⚠ below: Robust accuracy (L∞)" in page
    # The caveat beside a number is the board's verdict (invarbench.site.boards.flag_info), linking to the
    # flag that says why.
    assert '<a class="caveat" href="#flags">⚠ likely too optimistic</a>' in page and '<h2 id="flags">' in page


# --- origin, protocol, how to run it ---------------------------------------------------------------------

ORIGIN = """origin:
  repository: https://github.com/example/lenet-zoo
  commit: 0123456789abcdef0123456789abcdef01234567
  path: checkpoints/lenet.pt
  sha256: {sha}
  license: MIT
  authors: A. Author, B. Author
  paper:
    title: A LeNet for the tests (2026)
    url: https://example.org/paper
  training: Adam, 8 epochs, as the README states.
  reported:
    - {{metric: clean accuracy, value: 97.5, unit: percent, split: "mnist5k test set", examples: 1000, where: README}}
    - {{metric: certified robust error, value: 0.5, unit: fraction, split: "mnist5k test set", where: README}}
"""


def test_a_model_page_shows_the_cards_origin_against_the_measured_numbers(tmp_path):
    results = tmp_path / "results" / "mnist5k"
    results.mkdir(parents=True)
    doc = json.loads(STANDARD.read_text())
    card = doc["model"]["card_yaml"] + ORIGIN.format(sha="ab" * 32)
    doc["model"]["card_yaml"] = card
    doc["model"]["card_sha256"] = hashlib.sha256(card.encode()).hexdigest()
    doc["content_sha256"] = content_digest(doc)
    (results / STANDARD.name).write_text(dumps(doc), encoding="utf-8")
    shutil.copytree(STANDARD.with_suffix(".artifacts"), results / STANDARD.with_suffix(".artifacts").name)
    build_site_from_results(tmp_path / "results", tmp_path / "site", CARDS)
    page = (tmp_path / "site" / PAGE).read_text()
    assert (
        '<a href="https://github.com/example/lenet-zoo/blob/0123456789abcdef0123456789abcdef01234567/checkpoints/'
        'lenet.pt"><code class="hash">https://github.com/example/lenet-zoo@0123456789abcdef0123456789abcdef01234567'
        ":checkpoints/lenet.pt</code></a>" in page
    )
    assert '<td id="origin-license">MIT</td>' in page and '<td id="origin-authors">A. Author, B. Author</td>' in page
    assert '<a href="https://example.org/paper">A LeNet for the tests (2026)</a>' in page
    clean = _stored_metrics(STANDARD)["clean_accuracy"]
    reported = re.findall(r'<table class="reported">.*?</table>', page, flags=re.S)[0]
    assert '<td>clean accuracy</td><td class="num">97.5 % (1,000 images)</td>' in reported
    assert f'{100 * clean:.2f} % (1,000 images)<br><span class="note">the same images</span>' in reported
    assert "not measured by this suite" in reported  # the certified error


def test_a_model_page_says_the_suites_settings_in_words(published_site):
    from invarbench.site.protocol import protocol_lines

    page = (published_site / PAGE).read_text()
    run = decode_floats(json.loads(STANDARD.read_text()))["run"]
    lines = protocol_lines(run["suite_settings"], digest=run.get("data_digest"))
    listed = re.search(r'<ul class="protocol">(.*?)</ul>', page, flags=re.S).group(1)
    assert len(re.findall(r"<li>", listed)) == len(lines) > 4
    for line in lines:
        assert line.text in html_lib.unescape(listed)


def test_the_run_snippets_name_the_card_and_the_python_call_runs(published_site, monkeypatch):
    import invarbench

    page = (published_site / PAGE).read_text()
    command = html_lib.unescape(re.search(r'<code class="run-command">(.*?)</code>', page).group(1))
    assert command == "invarbench eval mnist5k/lenet-standard --suite standard"
    python = html_lib.unescape(re.search(r'<code class="run-python">(.*?)</code>', page, flags=re.S).group(1))
    seen = {}

    def evaluate(model, **kwargs):  # the real call takes minutes: check what the snippet gives it
        seen.update(kwargs, model=model)
        return "result"

    monkeypatch.setattr(invarbench, "evaluate_model", evaluate)
    monkeypatch.chdir(REPO)
    exec(compile(python, "snippet", "exec"), {"print": lambda *a: None})  # the page's own snippet
    assert seen["dataset"] == "mnist5k" and seen["suite"] == "standard" and seen["name"] == "lenet-standard"
    logits = seen["model"](torch.zeros(2, 1, 28, 28))
    assert logits.shape == (2, 10)


# --- the scatters ----------------------------------------------------------------------------------------


def test_the_board_scatters_have_headings_units_a_legend_and_the_correlation(board_site):
    from scipy.stats import spearmanr

    index = (board_site / "index.html").read_text()
    sections = re.findall(r'<section class="scatter" id="scatter-([^"]+)".*?</section>', index, flags=re.S)
    assert f"{BOARD}-median-min-l2-distance-path-width" in sections
    section = re.search(
        rf'<section class="scatter" id="scatter-{BOARD}-median-min-l2-distance-path-width".*?</section>', index, re.S
    ).group(0)
    assert '<h3 id="scatter-' in section and "Sensitivity against invariance</h3>" in section
    svg = re.search(r"<svg .*?</svg>", section, flags=re.S).group(0)
    root = ET.fromstring(svg)
    assert root.get("role") == "group"  # its links stay reachable
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    words = " ".join(" ".join(texts).split())  # a long axis title wraps onto lines of its own
    assert "Median min. L2 distance (L2 distance, [0, 1] pixel space) better →" in words
    assert "Path width (L2 radius, [0, 1] pixel space) ↑ wider: more invariant" in words
    assert {"training", "standard", "pgd-at"} <= set(texts)
    # The points as a table with links: every ranked model of the board.
    board = json.loads((board_site / "boards" / f"{BOARD}.json").read_text())
    rows = re.findall(r'<tr><th scope="row"><a href="([^"]+)">', section)
    assert len(rows) == len(board) == 30
    assert all((board_site / href).is_file() for href in rows)
    # The caption's rank correlation, against SciPy's on the same models.
    values = [{m["name"]: m["value"] for m in decode_floats(d["metrics"])} for d in board]
    rho = spearmanr([v["median_min_l2_distance"] for v in values], [v["path_width"] for v in values]).statistic
    caption = re.search(r"<figcaption[^>]*>(.*?)</figcaption>", section, flags=re.S).group(1)
    assert f"ρ = {rho:+.2f} [" in caption and "30 models" in caption


def test_the_second_scatter_plots_robust_accuracy_against_human_judged_invariance(board_site, tmp_path):
    """Where the board has the human-judged metric it gets the second scatter, in percent on both axes."""
    index = (board_site / "index.html").read_text()
    board = json.loads((board_site / "boards" / f"{BOARD}.json").read_text())
    has_human = any(m["name"] == "human_agreement_relabelled" for d in board for m in d["metrics"])
    slug = f"scatter-{BOARD}-robust-accuracy-linf-human-agreement-relabelled"
    assert (slug in index) == has_human
    if has_human:
        section = re.search(rf'<section class="scatter" id="{slug}".*?</section>', index, re.S).group(0)
        assert "Robustness against human-judged invariance" in section and "(%)" in section


def test_a_build_is_byte_identical(tmp_path):
    build_site_from_results(RESULTS, tmp_path / "a", CARDS)
    build_site_from_results(RESULTS, tmp_path / "b", CARDS)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


# --- on a phone ------------------------------------------------------------------------------------------


def test_a_model_page_has_no_horizontal_page_scroll_at_390_px(published_site, board_site, tmp_path):
    from test_site_browser import CHROMEDRIVER, NO_BROWSER, webdriver

    if webdriver is None:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    if not (shutil.which("chromium") and Path(CHROMEDRIVER).is_file()):
        pytest.skip(NO_BROWSER)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    pages = [published_site / PAGE, board_site / "models" / BOARD / f"{FLAGGED[0]}.html"]
    try:
        driver.set_window_size(390, 844)
        for page in pages:
            driver.get(page.as_uri())
            inner = driver.execute_script("return window.innerWidth")
            wide = driver.execute_script("return document.documentElement.scrollWidth")
            assert wide <= inner, (page.name, wide, inner)
            # The strips and the disagreements scroll inside their own box, never the page.
            for box in driver.find_elements("css selector", "figure.strip, figure.disagreements"):
                assert box.rect["x"] + box.rect["width"] <= inner + 1
            shots = Path(os.environ.get("INVARBENCH_ARTIFACTS") or tmp_path) / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(shots / f"{page.stem}-390.png"))
    finally:
        driver.quit()
