"""The site for its readers, in a real browser: accessibility (axe-core), screenshots, the compare page.

Built from the 30-model fixture board (tests/site_fixtures.py) and served over HTTP, every page kind
(the index with its boards, a model page, a compare page) is checked by axe-core
(``tests/vendor/axe-core/``, injected into the page; never shipped) at 1,280 and 390 px: no violation
of impact serious or critical. Screenshots of the index, a board, a model page and the compare page at
both widths are kept as test artefacts, under ``$INVARBENCH_ARTIFACTS`` or the test's tmp folder (the
paths are printed: see them with ``-rA`` or ``-s``). The compare page shows the models its URL names,
keeps the choice in the URL, and highlights their points on the board's scatters; a new visitor's task
(the adversarially trained model with the widest tube, compared with a standard ResNet) is done with the board's
own filter, sort and "Compare selected" at both widths.

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash .ci/install-browser.sh``) and selenium (the
dev extra); without them every test here skips, with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from site_fixtures import BOARD, MODELS, WEAKER, board_results, board_site, board_store, served_site

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # the dev extra is not installed: the fixture skips
    webdriver = None

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_VERSION = "4.11.0"
AXE_SHA256 = "e9e5863c33a874f09bc01acd9234b7e3c871479f5eef8802fa582544465e6d01"
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver
NO_BROWSER = "no chromium/chromedriver: install Debian's chromium and chromium-driver (.ci/install-browser.sh)"
WIDTHS = (1280, 390)
COMPARE = f"compare-{BOARD}.html"
# A model page with everything: flags, a paper, strips and its tube (tests/site_fixtures.py).
MODEL_PAGE = f"models/{BOARD}/resnet18-pgd-at.html"
PAGES = {"index": "index.html", "model": MODEL_PAGE, "compare": f"{COMPARE}?models=resnet18-pgd-at,resnet20-standard"}

# A figure whose layout collapsed (matplotlib draws it anyway, squeezed) is an error here.
pytestmark = pytest.mark.filterwarnings("error:constrained_layout not applied:UserWarning")


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the whole module."""
    if webdriver is None:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    if not (shutil.which("chromium") and Path(CHROMEDRIVER).is_file()):
        pytest.skip(NO_BROWSER)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        browser.set_page_load_timeout(60)
        browser.set_script_timeout(120)
        browser.set_window_size(1280, 900)
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("INVARBENCH_ARTIFACTS") or tmp_path_factory.mktemp("site-a11y-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _width(driver, width: int) -> None:
    """Make the page's viewport ``width`` CSS pixels wide (the window's frame differs between builds)."""
    driver.set_window_size(width, 900)
    inner = driver.execute_script("return window.innerWidth")
    if inner != width:
        driver.set_window_size(2 * width - inner, 900)


def _open(driver, url: str) -> list[dict]:
    driver.get_log("browser")
    driver.get(url)
    return driver.get_log("browser")


def _axe(driver) -> list[dict]:
    """Run axe-core on the loaded page; its violations of impact serious or critical, each with its rule,
    help text and up to three offending elements."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(function (r) { done(r); },"
        " function (e) { done({error: String(e)}); });"
    )
    assert "error" not in result, result.get("error")
    return [
        {
            "rule": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [(n["target"], n.get("failureSummary", "")[:300]) for n in v["nodes"][:3]],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _png(driver) -> bytes:
    """The whole page, not only the viewport (Chromium's DevTools protocol), its lazy images loaded first."""
    driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "var imgs = Array.from(document.images); imgs.forEach(function (i) { i.loading = 'eager'; });"
        "Promise.all(imgs.map(function (i) { return i.decode().catch(function () {}); }))"
        ".then(function () { done(); });"
    )
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    return base64.b64decode(shot["data"])


def test_the_vendored_axe_core_is_the_version_its_readme_names():
    text = AXE.read_text(encoding="utf-8")
    assert text.startswith(f"/*! axe v{AXE_VERSION}")
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == AXE_SHA256
    readme = (AXE.parent / "README.md").read_text(encoding="utf-8")
    assert f"**{AXE_VERSION}**" in readme and AXE_SHA256 in readme
    assert "Mozilla Public License" in (AXE.parent / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", sorted(PAGES))
def test_axe_core_finds_no_serious_or_critical_violation(driver, served_site, kind, width):
    _width(driver, width)
    # The browser asks the server for /favicon.ico, which a static site need not have: not the page's error.
    logged = _open(driver, served_site + PAGES[kind])
    errors = [e for e in logged if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]
    assert errors == []
    assert driver.execute_script("return window.innerWidth") == width
    assert _axe(driver) == []


@pytest.mark.parametrize("width", WIDTHS)
def test_screenshots_of_every_page_kind(driver, served_site, artifacts, width):
    """The index (top of the page: the introduction), a board (scrolled to its heading), a model page and
    the compare page, each as a PNG; at 390 px no page is wider than the phone."""
    _width(driver, width)
    shots = {
        "index": ("index.html", None),
        "board": ("index.html", f"board-{BOARD}"),
        "model": (PAGES["model"], None),
        "compare": (PAGES["compare"], None),
    }
    _shoot(driver, served_site, shots, artifacts, "site", width)


def _shoot(driver, base: str, shots: dict, artifacts: Path, prefix: str, width: int) -> None:
    """Each page of ``shots`` (kind -> (page, anchor or None)) under ``base`` as ``<prefix>-<kind>-<width>.png``."""
    for kind, (page, anchor) in shots.items():
        _open(driver, base + page)
        if anchor is None:
            png = _png(driver)
        else:  # the board: the viewport-high screen that starts at its heading
            driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", anchor)
            png = base64.b64decode(driver.get_screenshot_as_base64())
        shot = artifacts / f"{prefix}-{kind}-{width}.png"
        shot.write_bytes(png)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        print(f"screenshot of the {kind} at {width} px: {shot}")
        if width == 390:
            body, document = driver.execute_script(
                "return [document.body.scrollWidth, document.documentElement.scrollWidth]"
            )
            assert body <= width + 1 and document <= width + 1, (kind, body, document)


def _shown(driver) -> list[str]:
    """The models whose columns the compare table shows, in order."""
    return [
        th.get_attribute("data-model")
        for th in driver.find_elements(By.CSS_SELECTOR, "table.compare thead th[data-model]")
        if th.is_displayed()
    ]


def _chosen_points(driver) -> list[str]:
    """The hrefs of the points marked chosen on the page's scatters."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('section.scatter svg a.chosen'),"
        " a => a.getAttribute('href') || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href'))"
    )


def test_the_compare_page_shows_the_models_its_url_names_with_their_numbers_tubes_strips_and_points(
    driver,
    served_site,
    board_store,
):
    from invarbench.site.build import leaderboard

    _width(driver, 1280)
    chosen = ["wrn-70-16-pgd-at", "mlp-standard", "kw-cnn-certified", "resnet18-trades"]  # the last one flagged
    _open(driver, f"{served_site}{COMPARE}?models={','.join(chosen)}")
    board = next(b for b in leaderboard(board_store) if b.slug == BOARD)
    order = [r.card_id.split("/", 1)[1] for r in board.rows]
    assert _shown(driver) == sorted(chosen, key=order.index)  # in rank order
    # The numbers are the board's: each chosen model's path width with its interval, and its rank.
    rows = {r.card_id.split("/", 1)[1]: (r, rank) for r, rank in zip(board.rows, board.ranks, strict=True)}
    for name in chosen:
        row, rank = rows[name]
        cell = driver.find_element(By.CSS_SELECTOR, f"tr[data-metric='path_width'] td[data-model='{name}']")
        pw = row.metrics["path_width"]
        assert cell.text.split("\n") == [f"{pw.value:.3f}", f"[{pw.ci_low:.3f}, {pw.ci_high:.3f}]"]
        linf = driver.find_element(By.CSS_SELECTOR, f"tr[data-metric='robust_accuracy_linf'] td[data-model='{name}']")
        value = f"{100 * row.metrics['robust_accuracy_linf'].value:.1f} %"
        # A flag's caveat stands on the numbers it concerns (the robust accuracies, for this one), not on others.
        if WEAKER in row.flags:
            assert linf.text.split("\n")[0] == f"{value} ⚠" and "likely too optimistic (masking?)" in linf.text
            assert "⚠" not in cell.text
        else:
            assert linf.text.split("\n")[0] == value and "⚠" not in linf.text
        first = driver.find_element(By.CSS_SELECTOR, f"table.compare tbody tr td[data-model='{name}']")
        assert first.text == str(rank)
    heading = driver.find_element(By.CSS_SELECTOR, "tr[data-metric='robust_accuracy_linf'] th").text
    assert "↑" in heading and "higher is better" in heading
    # Their tubes and strips, loaded, and no other model's.
    for section in ("tubes", "strips"):
        shown = [f for f in driver.find_elements(By.CSS_SELECTOR, f"#{section} figure[data-model]") if f.is_displayed()]
        assert sorted(f.get_attribute("data-model") for f in shown) == sorted(chosen)
        for figure in shown:
            driver.execute_script("arguments[0].scrollIntoView()", figure)
            img = figure.find_element(By.TAG_NAME, "img")
            driver.execute_script("return arguments[0].decode ? arguments[0].decode() : null", img)
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img), (
                img.get_attribute("src")
            )
    # Their points, and only theirs, are highlighted on each scatter (drawn larger than the others).
    scatters = driver.find_elements(By.CSS_SELECTOR, "section.scatter svg")
    assert scatters
    expected = sorted(f"models/{BOARD}/{name}.html" for name in chosen)
    assert sorted(_chosen_points(driver)) == sorted(expected * len(scatters))
    big, small = driver.execute_script(
        "var s = document.querySelector('section.scatter svg');"
        "return [s.querySelector('a.chosen .chosen-mark').getBoundingClientRect().width,"
        " s.querySelector('a:not(.chosen) use').getBoundingClientRect().width]"
    )
    assert big > 1.5 * small


# Per chosen point of each scatter: where its data put it (the <use>'s x and y through its parent's screen
# transform), the box of the <use> as drawn, the box of its highlight and the highlight's stroke.
_CHOSEN_MARKS_JS = """
return Array.from(document.querySelectorAll('section.scatter svg')).map(function (svg) {
  function centre(r) { return [(r.left + r.right) / 2, (r.top + r.bottom) / 2, r.width]; }
  var other = svg.querySelector('a:not(.chosen) use');
  return {other: other ? other.getBoundingClientRect().width : null,
    chosen: Array.from(svg.querySelectorAll('a.chosen')).filter(a => a.querySelector('use')).map(function (a) {
    var use = a.querySelector('use'), m = use.parentNode.getScreenCTM();
    var x = parseFloat(use.getAttribute('x')), y = parseFloat(use.getAttribute('y'));
    var mark = a.querySelector('.chosen-mark'), style = mark ? getComputedStyle(mark) : null;
    return {href: a.getAttribute('href') || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href'),
      data: [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f], point: centre(use.getBoundingClientRect()),
      mark: mark ? centre(mark.getBoundingClientRect()) : null,
      stroke: style ? [style.stroke, parseFloat(style.strokeWidth)] : null};
  })};
});
"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("where", "board", "models"),
    [
        ("fixture", BOARD, ("resnet18-pgd-at", "mlp-standard")),
        ("published", "cifar10-standard-v4", ("wong-scaled-small-8px-stage0", "marabou-large")),
    ],
)
def test_the_compare_pages_highlight_sits_on_each_chosen_point_with_a_black_edge(
    driver, request, where, board, models, width
):
    """On every scatter of the compare page, each chosen model's point stays where its data put it and its
    highlight (drawn larger, with a black edge) is centred on it, within 1 px, at 1,280 and 390 px: on the
    fixture board and on the published CIFAR-10 board (Wong et al.'s small network near x = 0, Marabou's large
    network at the bottom of the plot)."""
    if where == "fixture":
        base = request.getfixturevalue("served_site")
    else:
        site = request.getfixturevalue("published_site")
        if not (site / f"compare-{board}.html").is_file():
            pytest.skip(f"no published {board} board")
        base = site.as_uri() + "/"
    _width(driver, width)
    _open(driver, f"{base}compare-{board}.html?models={','.join(models)}")
    figures = driver.execute_script(_CHOSEN_MARKS_JS)
    assert figures
    for figure in figures:
        hrefs = sorted(p["href"] for p in figure["chosen"])
        assert hrefs == sorted(f"models/{board}/{name}.html" for name in models), hrefs
        for point in figure["chosen"]:
            (x, y), (u, v, _) = point["data"], point["point"]
            assert abs(u - x) <= 1 and abs(v - y) <= 1, (point["href"], point["data"], point["point"])
            assert point["mark"] is not None, point["href"]
            a, b, mark_size = point["mark"]
            assert abs(a - x) <= 1 and abs(b - y) <= 1, (point["href"], point["data"], point["mark"])
            assert mark_size > 1.5 * figure["other"], (mark_size, figure["other"])
            assert point["stroke"][0] == "rgb(0, 0, 0)" and point["stroke"][1] > 0, point["stroke"]


# The text of an element as laid out: how many lines it takes, and the words (split at spaces, hyphens and
# slashes, where a browser may break a line) that are broken across two lines.
_LAYOUT_JS = """
var el = arguments[0], tops = [], broken = [];
var walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
for (var node = walk.nextNode(); node; node = walk.nextNode()) {
  var re = /[^\\s\\-\u2013\\/]+/g, m;
  while ((m = re.exec(node.data)) !== null) {
    var range = document.createRange();
    range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
    var rows = Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top / 6));
    rows = rows.filter((v, i) => rows.indexOf(v) === i);
    if (rows.length > 1) { broken.push(m[0]); }
    rows.forEach(function (v) { if (tops.indexOf(v) < 0) { tops.push(v); } });
  }
}
return {lines: tops.length, broken: broken};
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_compare_pages_headings_and_flags_read_on_a_phone(driver, published_site, width):
    """The published CIFAR-10 board's compare page with a flagged model (long names, a long flag id): each
    model's heading takes at most four lines and names it unambiguously (its full name on its link), and no word
    of the headings or of the flags' text is broken across two lines, at 1,280 and 390 px."""
    board, models = "cifar10-standard-v4", ("wong-scaled-small-8px-stage0", "marabou-large")
    if not (published_site / f"compare-{board}.html").is_file():
        pytest.skip(f"no published {board} board")
    _width(driver, width)
    _open(driver, (published_site / f"compare-{board}.html").as_uri() + f"?models={','.join(models)}")
    status = driver.find_element(By.ID, "status").text
    headings = [
        th for th in driver.find_elements(By.CSS_SELECTOR, "table.compare thead th[data-model]") if th.is_displayed()
    ]
    assert [th.get_attribute("data-model") for th in headings] == list(models)
    shown = []
    for th in headings:
        layout = driver.execute_script(_LAYOUT_JS, th)
        assert layout["lines"] <= 4 and not layout["broken"], (th.text, layout)
        link = th.find_element(By.TAG_NAME, "a")
        full = link.get_attribute("title") or th.text
        assert full in status, (full, status)  # the full name, as the chooser and the status line give it
        shown.append(th.text)
    assert len(set(shown)) == len(shown), shown
    flags = driver.find_element(By.CSS_SELECTOR, f"tr[data-metric=flags] td[data-model='{models[0]}']")
    assert "masking?" in flags.text and "gradient" in flags.text, flags.text  # the badge and what it means
    layout = driver.execute_script(_LAYOUT_JS, flags)
    assert not layout["broken"], layout["broken"]


def test_choosing_models_on_the_compare_page_updates_the_page_and_its_url(driver, served_site):
    _width(driver, 390)
    _open(driver, served_site + COMPARE)
    best = [m.slug for m in MODELS if m.slug in ("wrn-70-16-pgd-at", "smallcnn-trades", "wrn-34-10-trades")]
    shown = _shown(driver)
    assert len(shown) == 2 and set(shown) <= set(best)  # no models in the URL: the two best-ranked
    assert "Comparing 2 models" in driver.find_element(By.ID, "status").text

    def box(name: str):
        return driver.find_element(By.ID, f"choose-{name}")

    choose = driver.find_element(By.ID, "choose")
    assert choose.get_attribute("open") is None  # two models shown: the list of models is folded away
    choose.find_element(By.TAG_NAME, "summary").click()
    for name in shown:
        box(name).click()
    assert _shown(driver) == [] and "Choose at least two models" in driver.find_element(By.ID, "status").text
    assert "models" not in parse_qs(urlparse(driver.current_url).query)
    for name in ("resnet20-standard", "lenet-other-distilled"):
        box(name).click()
    query = parse_qs(urlparse(driver.current_url).query)
    assert query["models"] == ["lenet-other-distilled,resnet20-standard"]  # rank order
    assert _shown(driver) == ["lenet-other-distilled", "resnet20-standard"]
    # The address is shareable: opened afresh, it shows the same comparison.
    url = driver.current_url
    _open(driver, served_site + "index.html")
    _open(driver, url)
    assert _shown(driver) == ["lenet-other-distilled", "resnet20-standard"]
    assert [box(n).is_selected() for n in ("resnet20-standard", "lenet-other-distilled", "mlp-standard")] == [
        True,
        True,
        False,
    ]
    # Unknown names are ignored; a full card id is read as its name.
    _open(driver, f"{served_site}{COMPARE}?models=no-such-model,mnist5k/mlp-standard,resnet20-standard")
    assert _shown(driver) == ["resnet20-standard", "mlp-standard"]


def test_the_compare_page_without_javascript_says_how_to_compare(board_site):
    html = (board_site / COMPARE).read_text(encoding="utf-8")
    noscript = html[html.index("<noscript>") : html.index("</noscript>")]
    assert "needs JavaScript" in noscript and f'href="index.html#board-{BOARD}"' in noscript
    # Every ranked model is listed with a link to its page.
    for model in MODELS:
        assert f'href="models/{BOARD}/{model.slug}.html"' in html, model.slug


def test_the_fixture_board_is_what_the_site_is_designed_for(board_store):
    """30 ranked models of every training method, the flagged ones flagged by their own values, a smoke run
    apart, and a small second board: the shape the site's layouts and these tests assume."""
    from site_fixtures import FLAGGED, SECOND, SECOND_BOARD

    from invarbench.site.build import leaderboard

    boards = {b.slug: b for b in leaderboard(board_store)}
    assert sorted(boards) == sorted([BOARD, SECOND_BOARD])
    board = boards[BOARD]
    assert {r.card_id for r in board.rows} == {f"mnist5k/{m.slug}" for m in MODELS}
    assert len(board.rows) == 30 and len(board.unranked) == 1 and len(boards[SECOND_BOARD].rows) == len(SECOND)
    assert {r.training for r in board.rows} == {"standard", "pgd-at", "trades", "certified", "other"}
    assert {r.card_id.split("/")[1] for r in board.rows if WEAKER in r.flags} == set(FLAGGED)
    assert max(len(r.name) for r in board.rows) > 70
    # Every model has the scatter's two metrics, and no two tie on them.
    for metric in ("median_min_l2_distance", "path_width"):
        values = [r.metrics[metric].value for r in board.rows]
        assert len(set(values)) == len(values), metric


@pytest.mark.parametrize("width", WIDTHS)
def test_a_new_visitor_finds_the_most_invariant_adversarially_trained_model_and_compares_it_with_a_resnet(
    driver,
    served_site,
    board_store,
    width,
):
    """The issue's task, on the board's own controls (on a phone, under "Filter and sort"): filter the board to
    the adversarially trained models (the one option for every adversarial method), sort by path width, pick the
    first; filter to standard training and the ResNet family, pick one; "Compare selected" opens the compare page
    with both."""
    from selenium.webdriver.support.ui import Select

    from invarbench.cards.schema import ADVERSARIAL_METHODS
    from invarbench.site.boards import ADVERSARIAL_CHOICE
    from invarbench.site.build import leaderboard

    board = next(b for b in leaderboard(board_store) if b.slug == BOARD)
    adversarial = [r for r in board.rows if r.training in ADVERSARIAL_METHODS]
    widest = max(adversarial, key=lambda r: r.metrics["path_width"].value).card_id.split("/", 1)[1]
    _width(driver, width)
    _open(driver, served_site + "index.html")
    controls = driver.find_element(By.CSS_SELECTOR, f"div.controls[data-board='{BOARD}']")
    table = driver.find_element(By.ID, f"table-{BOARD}")

    def control(css: str):
        return Select(controls.find_element(By.CSS_SELECTOR, css))

    def visible() -> list:
        return [tr for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr") if tr.is_displayed()]

    fold = controls.find_element(By.CSS_SELECTOR, "details.filters > summary")
    if fold.is_displayed():  # a phone folds the filters under "Filter and sort"
        assert fold.text == "Filter and sort" and not controls.find_element(By.TAG_NAME, "select").is_displayed()
        fold.click()
    control("select[data-filter=training]").select_by_value(ADVERSARIAL_CHOICE)
    heading = table.find_element(By.CSS_SELECTOR, "th[data-key=path_width] button")
    if heading.is_displayed():  # the table's heading (a wide screen); a phone's cards have a "Sort by" menu
        heading.click()
    else:
        control("select[data-sort-choice]").select_by_value("path_width")
    rows = visible()
    assert {tr.get_attribute("data-model") for tr in rows} == {r.card_id for r in adversarial}
    assert rows[0].get_attribute("data-model") == f"mnist5k/{widest}"
    driver.execute_script("arguments[0].click()", rows[0].find_element(By.CSS_SELECTOR, "input.pick"))
    control("select[data-filter=training]").select_by_value("standard")
    control("select[data-filter=family]").select_by_value("ResNet")
    resnet = visible()[0]
    name = resnet.get_attribute("data-model").split("/", 1)[1]
    assert next(r for r in board.rows if r.card_id == f"mnist5k/{name}").family == "ResNet"
    driver.execute_script("arguments[0].click()", resnet.find_element(By.CSS_SELECTOR, "input.pick"))
    link = controls.find_element(By.CSS_SELECTOR, "a.compare")
    assert "2" in link.text
    link.click()
    assert urlparse(driver.current_url).path.endswith(COMPARE)
    assert sorted(_shown(driver)) == sorted([widest, name])
    assert "Comparing 2 models" in driver.find_element(By.ID, "status").text


# --- the published boards: real model names ---------------------------------------------------------

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
CARDS = Path(__file__).resolve().parents[1] / "model_cards"
PUBLIC_BOARD = "mnist-standard-v4"  # the public MNIST checkpoints (leaderboard/results/mnist)
PUBLIC_COMPARE = (f"compare-{PUBLIC_BOARD}.html", "?models=wong-scaled-small-stage0,eran-fc6x100")

# Per scatter, each chosen point's own label (its lines, its box, its font size) and its highlight's box, and the
# other points' labels that are shown (text and box).
_CHOSEN_LABELS_JS = """
function box(el) { var r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
return Array.from(document.querySelectorAll('section.scatter svg')).map(function (svg) {
  var marked = Array.from(svg.querySelectorAll('a.chosen')).filter(a => a.querySelector('.chosen-mark'));
  return {chosen: marked.map(function (a) {
    var href = a.getAttribute('href') || a.getAttributeNS('http://www.w3.org/1999/xlink', 'href');
    var label = Array.from(svg.querySelectorAll('a.chosen-label')).find(l => l.getAttribute('href') === href);
    var lines = label ? Array.from(label.querySelectorAll('tspan')) : [];
    return {href: href, mark: box(a.querySelector('.chosen-mark')), label: label ? box(label) : null,
      lines: lines.map(t => t.textContent), heights: lines.map(t => t.getBoundingClientRect().height),
      shown: !!label && label.getClientRects().length > 0
        && getComputedStyle(label.querySelector('text')).opacity === '1'};
  }), others: Array.from(svg.querySelectorAll('a:not(.chosen):not(.chosen-label) text'))
      .filter(t => t.getClientRects().length > 0).map(t => ({text: t.textContent, box: box(t)}))};
});
"""


def _gap(a: list[float], b: list[float]) -> float:
    """The distance between two boxes (left, top, right, bottom), 0 when they touch or overlap."""
    return max(0.0, max(a[0], b[0]) - min(a[2], b[2]), max(a[1], b[1]) - min(a[3], b[3]))


def _overlap(a: list[float], b: list[float]) -> float:
    """How far two boxes overlap (the smaller of the overlaps in x and y; <= 0: apart)."""
    return min(min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1]))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "models",
    [
        ("wong-scaled-small-8px-stage0", "akamaster-resnet20"),
        ("wong-scaled-small-8px-stage0", "wong-scaled-small-l2-36px-stage0", "oval-wide-kw"),  # three close together
    ],
)
def test_each_chosen_point_has_its_own_label_beside_its_highlight(driver, published_site, models, width):
    """The published CIFAR-10 board's compare page with Wong et al.'s L∞ 8/255 network (whose twin, the L2 36/255
    one, has the same scatter label nearby) and the ResNet-20, or with the twin and a third point near both: at
    1,280 and 390 px each chosen point has a label of its own, its short name (the heading of its column), shown
    at full strength in letters at least 10 px tall, within 8 px of its highlight, over no highlight and no other
    chosen label; and no other model's label is shown near a highlight or reads as a chosen model's name."""
    board = "cifar10-standard-v4"
    if not (published_site / f"compare-{board}.html").is_file():
        pytest.skip(f"no published {board} board")
    _width(driver, width)
    _open(driver, (published_site / f"compare-{board}.html").as_uri() + f"?models={','.join(models)}")
    shorts = {
        f"models/{board}/{name}.html": driver.execute_script(
            "return document.querySelector(`thead th[data-model='${arguments[0]}'] .name-short`).textContent", name
        ).strip()
        for name in models
    }
    assert shorts[f"models/{board}/{models[0]}.html"] == "Wong et al. CIFAR small,… (L∞ 8/255)"
    figures = driver.execute_script(_CHOSEN_LABELS_JS)
    assert figures
    for figure in figures:
        assert sorted(p["href"] for p in figure["chosen"]) == sorted(shorts)
        for point in figure["chosen"]:
            assert point["label"] is not None and point["shown"], point
            assert " ".join(point["lines"]) == shorts[point["href"]], point["lines"]
            assert min(point["heights"]) >= 10, point["heights"]
            assert _gap(point["label"], point["mark"]) <= 8, (point["label"], point["mark"])
            for other in figure["chosen"]:
                assert _overlap(point["label"], other["mark"]) <= 0.5, (point["href"], other["href"])
                if other is not point:
                    assert _overlap(point["label"], other["label"]) <= 0, (point["href"], other["href"])
            name = shorts[point["href"]].split(" (")[0].rstrip("…")
            for other in figure["others"]:
                assert not other["text"].rstrip("…").startswith(name), other["text"]  # the twin's label: hidden
                assert _gap(other["box"], point["mark"]) > 8, (other["text"], point["href"])
                assert _overlap(other["box"], point["label"]) <= 0, (other["text"], point["href"])


# Every <text> of a page's scatters: its box, its svg's box, and whether it is a point's label (inside a link).
_SCATTER_TEXTS_JS = """
return Array.from(document.querySelectorAll('section.scatter svg')).map(function (svg) {
  var s = svg.getBoundingClientRect();
  return {svg: [s.left, s.top, s.right, s.bottom], texts: Array.from(svg.querySelectorAll('text'))
      .filter(t => t.getClientRects().length > 0).map(function (t) {  // the texts shown (not a label hidden)
    var r = t.getBoundingClientRect();
    return {text: t.textContent, box: [r.left, r.top, r.right, r.bottom], label: !!t.closest('a')};
  })};
});
"""


@pytest.fixture(scope="module")
def published_site(tmp_path_factory) -> Path:
    """The site of the published results (with the checkout's cards, which hold the weights)."""
    from invarbench.site.build import build_site_from_results

    if not (RESULTS / PUBLIC_BOARD.split("-")[0]).is_dir():
        pytest.skip(f"no published {PUBLIC_BOARD} board in {RESULTS}")
    out = tmp_path_factory.mktemp("published") / "site"
    build_site_from_results(RESULTS, out, CARDS)
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_the_compare_pages_scatters_keep_every_label_whole_and_apart(driver, published_site, width):
    """The public MNIST board's compare page (ten models, long names, every point labelled): at 1,280 and
    390 px every text of each scatter (axis titles, ticks, point labels, legend) lies inside its figure, and no
    point label covers another text."""
    _width(driver, width)
    _open(driver, (published_site / PUBLIC_COMPARE[0]).as_uri() + PUBLIC_COMPARE[1])
    figures = driver.execute_script(_SCATTER_TEXTS_JS)
    assert len(figures) == 2  # sensitivity against invariance; robustness against human-judged invariance
    for figure in figures:
        x0, y0, x1, y1 = figure["svg"]
        assert x0 >= 0 and x1 <= width, figure["svg"]  # the figure itself within the window
        labels = [t for t in figure["texts"] if t["label"]]
        assert len(labels) >= 5, [t["text"] for t in figure["texts"]]
        for t in figure["texts"]:
            a0, b0, a1, b1 = t["box"]
            assert a0 >= x0 - 1 and a1 <= x1 + 1 and b0 >= y0 - 1 and b1 <= y1 + 1, (t["text"], t["box"], figure["svg"])
        for label in labels:
            for other in figure["texts"]:
                if other is label:
                    continue
                a, b = label["box"], other["box"]
                overlap = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
                assert min(overlap) <= 1, (label["text"], other["text"])


@pytest.mark.parametrize("width", WIDTHS)
def test_screenshots_of_the_public_mnist_board(driver, published_site, artifacts, width):
    """The same four page kinds on the published results: the index, the public MNIST board, the model page
    of a public checkpoint (its origin: upstream file, licence, paper, upstream-reported against measured) and
    the compare page, as ``site-published-<kind>-<width>.png``; at 390 px no page is wider than the phone."""
    _width(driver, width)
    shots = {
        "index": ("index.html", None),
        "board": ("index.html", f"board-{PUBLIC_BOARD}"),
        "model": (f"models/{PUBLIC_BOARD}/wong-scaled-small-stage0.html", None),
        "compare": ("".join(PUBLIC_COMPARE), None),
    }
    _shoot(driver, published_site.as_uri() + "/", shots, artifacts, "site-published", width)
    _open(driver, (published_site / shots["model"][0]).as_uri())
    # The compare page at 1,280 px: the two models' columns are as wide as each other, whatever their text.
    if width == 1280:
        _open(driver, (published_site / PUBLIC_COMPARE[0]).as_uri() + PUBLIC_COMPARE[1])
        widths = driver.execute_script(
            "return Array.from(document.querySelectorAll('table.compare thead th[data-model]'))"
            ".filter(th => !th.hidden).map(th => th.getBoundingClientRect().width)"
        )
        assert len(widths) == 2 and abs(widths[0] - widths[1]) <= 2, widths
    # The index's line per board: a flagged best model's number says so.
    _open(driver, (published_site / "index.html").as_uri())
    for line in driver.find_elements(By.CSS_SELECTOR, "nav.boards li"):
        slug = line.find_element(By.TAG_NAME, "a").get_attribute("href").split("#board-")[1]
        top = driver.find_element(By.CSS_SELECTOR, f"#table-{slug} tbody tr").get_attribute("data-flags")
        assert ("⚠ flagged" in line.text) == bool(top), (line.text, top)
    _open(driver, (published_site / shots["model"][0]).as_uri())
    # The metrics table fits its box at both widths: nothing of it behind a sideways scroll.
    wide, box = driver.execute_script(
        "var t = document.querySelector('table.metrics'); return [t.scrollWidth, t.parentElement.clientWidth]"
    )
    assert wide <= box, (wide, box)
    origin = driver.find_element(By.ID, "origin-file")
    assert origin.find_element(By.TAG_NAME, "a").get_attribute("href").startswith("https://github.com/")
