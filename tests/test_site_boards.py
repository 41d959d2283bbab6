"""The boards of the index for a board of 30 models (tests/site_fixtures.py): metric groups, the protocol, flags
with caveats, architecture families, the correlations, and in a real browser (headless Chromium, as in
tests/test_site_browser.py): every metric in view at 1,280 px, a card per model at 390 px with a number on the
first screen, the filters, sorting by mouse and keyboard with ``aria-sort``, the state in the URL, the empty
result's message and the compare link.

Screenshots of the index at both widths are kept as test artefacts (``$INVARBENCH_ARTIFACTS`` or the test's
tmp folder; the path is printed: see it with ``-rA`` or ``-s``).
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from site_fixtures import BOARD, MODELS, WEAKER, board_results, board_site, board_store  # fixtures

from invarbench.measurements import flag_docs, metric_specs
from invarbench.models.architectures import ARCHITECTURES, describe
from invarbench.site.boards import (
    ADVERSARIAL_CHOICE,
    NO_ARCHITECTURE,
    UNCERTIFIED_CHOICE,
    architecture_family,
    caveats,
    flag_info,
    median_distance_is_zero,
    pending_models,
    training_choices,
)
from invarbench.site.build import leaderboard
from invarbench.site.correlations import ModelPoint, board_correlations
from invarbench.site.protocol import REPOSITORY_URL

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:  # the dev extra is not installed: the browser fixture skips
    webdriver = None

ROOT = Path(__file__).resolve().parents[1]
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver
NO_BROWSER = "no chromium/chromedriver: install Debian's chromium and chromium-driver (.ci/install-browser.sh)"

# A figure whose layout collapsed (matplotlib draws it anyway, squeezed) is an error here.
pytestmark = pytest.mark.filterwarnings("error:constrained_layout not applied:UserWarning")


# --- without a browser ------------------------------------------------------------------------------


def _docs_sections() -> dict[str, str]:
    """docs/measurements.md's top-level sections by heading."""
    text = (ROOT / "docs" / "measurements.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_metric_is_grouped_as_the_docs_section_that_defines_it():
    """The group is the question of the section of docs/measurements.md that defines the metric: §1
    Sensitivity; §2 NSPGD, §3 Path widths and §9 human judgement, invariance; §5, clean accuracy and
    calibration."""
    expected = {"1.": "sensitivity", "2.": "invariance", "3.": "invariance", "9.": "invariance", "5.": "calibration"}
    sections = _docs_sections()
    for spec in metric_specs():
        defining = [h for h, body in sections.items() if f"`{spec.name}`" in body and h[:2] in expected]
        assert defining, f"{spec.name} is defined in no section of docs/measurements.md"
        assert spec.group == expected[defining[0][:2]], (spec.name, defining[0], spec.group)


def test_architecture_families_agree_with_the_registered_descriptions():
    """Every registered architecture's family, against its own description: ResNets say ResNet, the MLPs
    fully connected, the rest are convolutional."""
    for name in ARCHITECTURES.names():
        family, text = architecture_family(name), describe(ARCHITECTURES.get(name)).lower()
        if family in ("ResNet", "Wide ResNet"):
            assert "resnet" in text or "residual" in text or "wrn" in text, (name, text)
            assert (family == "Wide ResNet") == name.startswith("wide_resnet"), name
        elif family == "MLP":
            assert "fully connected" in text, (name, text)
        else:
            assert family == "CNN" and ("conv" in text or "cnn" in text or "lenet" in text), (name, family, text)
    assert architecture_family(None) == NO_ARCHITECTURE
    assert architecture_family("torchvision/vgg16_bn") == "VGG"
    assert architecture_family("timm/efficientnet_b0") == "Mobile/efficient CNN"
    assert architecture_family("timm/coatnet_0_rw_224") == "coatnet"


def test_the_grouped_training_option_has_a_value_no_card_method_has():
    """The group "adversarially trained (any)" and each single method write their value to the board's URL:
    the group's is none of the card schema's methods (one of which is called 'adversarial'), so a URL
    names one option; every method keeps its own name as its value."""
    from invarbench.cards.schema import ADVERSARIAL_METHODS, TRAINING_METHODS

    assert ADVERSARIAL_CHOICE not in TRAINING_METHODS and "adversarial" in TRAINING_METHODS
    assert UNCERTIFIED_CHOICE not in TRAINING_METHODS
    choices = training_choices(set(TRAINING_METHODS))
    values = [c.value for c in choices]
    assert len(values) == len(set(values)) == len(TRAINING_METHODS) + 2
    assert choices[0].value == ADVERSARIAL_CHOICE and choices[0].methods == tuple(ADVERSARIAL_METHODS)
    # The second group: trained on an attack's examples, certified training left out.
    assert choices[1].value == UNCERTIFIED_CHOICE and choices[1].label == "adversarially trained, not certified"
    assert choices[1].methods == tuple(m for m in ADVERSARIAL_METHODS if m != "certified")
    assert {c.value: c.methods for c in choices[2:]} == {m: (m,) for m in TRAINING_METHODS}
    # Every option says what it selects: a method in the card schema's words, a group naming its methods.
    for c in choices[2:]:
        assert c.help == f"{c.value}: {TRAINING_METHODS[c.value]}", c
    for c in choices[:2]:
        assert c.help.startswith(c.label + ": ") and all(m in c.help for m in c.methods), c
    assert "certified" not in choices[1].help.split(":", 1)[1].split(")")[0]
    assert [c.value for c in training_choices({"standard"})] == ["standard"]  # no adversarial row: no group
    # Certified models alone: the group without them would select nothing, so it is not offered.
    assert [c.value for c in training_choices({"standard", "certified"})] == [
        ADVERSARIAL_CHOICE,
        "certified",
        "standard",
    ]


def test_pending_models_carry_their_cards_training_and_family():
    """A board's pending submissions with what its filters match them by, from their cards; a status
    without its card among those given is left out."""
    from types import SimpleNamespace

    from invarbench.submissions import PENDING, SubmissionStatus

    def ref(card_id, method, arch):
        architecture = SimpleNamespace(name=arch) if arch else None
        return SimpleNamespace(
            card=SimpleNamespace(id=card_id, training=SimpleNamespace(method=method), architecture=architecture)
        )

    def status(card_id, name, running=False):
        return SubmissionStatus(card_id, name, "cifar10", "standard", 4, PENDING, running=running)

    cards = [ref("cifar10/r20", "standard", "resnet20"), ref("cifar10/x", "pgd-at", None)]
    got = pending_models(
        [status("cifar10/r20", "ResNet-20", True), status("cifar10/x", "X"), status("cifar10/gone", "G")], cards
    )
    assert [(p.card_id, p.name, p.training, p.family, p.architecture, p.running) for p in got] == [
        ("cifar10/r20", "ResNet-20", "standard", "ResNet", "resnet20", True),
        ("cifar10/x", "X", "pgd-at", NO_ARCHITECTURE, None, False),
    ]
    assert got[0].search == "ResNet-20 cifar10/r20 standard ResNet resnet20"


def test_the_board_says_which_invariance_number_means_what_before_its_table(board_site):
    """Above the table: one sentence on what a higher NSPGD closure and a wider path width say about
    excessive invariance (docs/measurements.md §2 and §3), and "How to read the columns"."""
    board = _board_html(board_site)
    table = board.index('<table class="leaderboard"')
    reading = re.search(r'<p class="reading"[^>]*>(.*?)</p>', board, flags=re.S)
    assert reading and reading.start() < table
    text = re.sub(r"<[^>]+>", "", reading.group(1))
    assert "A higher NSPGD closure: the walks get closer to an image of another class" in text
    assert "keeps its confidence in the source class, a more excessively invariant model" in text
    assert "A wider path width: that confidence stays flat over a wider tube around the walk" in text
    sections = _docs_sections()
    assert "higher: more excessively invariant" in sections["2. NSPGD"]
    assert "larger: a wider tube of near-constant confidence, a\nmore invariant model" in sections["3. Path widths"]
    columns = board.index(f'<details class="columns" id="columns-{BOARD}"><summary>How to read the columns</summary>')
    assert columns < table


def test_flags_get_short_badges_and_caveats_on_the_numbers_they_concern():
    docs = flag_docs()
    for flag in docs:
        info = flag_info(flag, docs)
        assert info.explanation == docs[flag] and 0 < len(info.label) <= 10, (flag, info.label)
    weaker = caveats([WEAKER], docs)
    assert set(weaker) == {"robust_accuracy_linf", "robust_accuracy_l2"}
    assert "too optimistic" in weaker["robust_accuracy_linf"][0].caveat
    assert set(caveats(["batch_dependent_outputs"], docs)) == {"*"}  # every number
    assert set(caveats(["a_plugin_flag"], docs)) == {"*"}  # unknown: a caveat too many rather than too few


def test_the_board_carries_families_and_correlations_computed_from_its_cards(board_store):
    """Families and architecture groups come from each run's stored card (read here with plain YAML); the
    correlations equal board_correlations over the rows' values and those groups."""
    [board] = [b for b in leaderboard(board_store) if b.slug == BOARD]
    assert len(board.rows) == len(MODELS) == 30
    runs = {r.run_id: board_store.get_run(r.run_id) for r in board.rows}
    for row in board.rows:
        arch = yaml.safe_load(runs[row.run_id].model.card_yaml)["architecture"]
        assert row.architecture == arch["name"] and row.family == architecture_family(arch["name"])
        kwargs = ", ".join(f"{k}={v}" for k, v in sorted((arch.get("kwargs") or {}).items()))
        assert row.arch_group == (f"{arch['name']}({kwargs})" if kwargs else arch["name"])
    points = [ModelPoint(r.card_id, r.arch_group, {k: c.value for k, c in r.metrics.items()}) for r in board.rows]
    expected = board_correlations(points)
    assert [(c.x, c.y, c.group) for c in board.correlations] == [(c.x, c.y, c.group) for c in expected]
    for got, want in zip(board.correlations, expected, strict=True):
        assert got.text() == want.text()
    overall = [c for c in board.correlations if c.group is None]
    assert {(c.x, c.y) for c in overall} >= {
        ("robust_accuracy_linf", "path_width"),
        ("robust_accuracy_linf", "nspgd_closure"),
    }
    assert any(c.group is not None for c in board.correlations)  # the fixture has groups of 3 or more
    # The protocol comes from the recorded settings: the mnist5k v4 suite's ε and pairs.
    settings = runs[board.rows[0].run_id].suite_settings["measurements"]
    text = " ".join(line.text for line in board.protocol)
    assert (
        f"ε = {settings['pgd_linf']['eps']:g}" in text
        and f"first {settings['nspgd']['pairs']['num_pairs']} images" in text
    )


def _board_html(site: Path) -> str:
    html = (site / "index.html").read_text(encoding="utf-8")
    start = html.index(f'<h2 id="board-{BOARD}"')
    end = html.find('<h2 id="board-', start + 10)
    return html[start : end if end > 0 else len(html)]


def test_the_index_says_what_was_measured_and_where_the_project_is(board_site):
    html = (board_site / "index.html").read_text(encoding="utf-8")
    board = _board_html(board_site)
    assert "What was measured." in board and "all 1,000 images of the mnist5k test split" in board
    for words in (
        "ε = 0.3",
        "ε = 2",
        "APGD-CE",
        "APGD-T",
        "FMN",
        "NSPGD",
        "256 random directions",
        "Reliability checks",
    ):
        assert words in board, words
    assert f'href="{REPOSITORY_URL}"' in html and f'href="{REPOSITORY_URL}/blob/main/CONTRIBUTING.md"' in html
    assert "<strong>Sensitivity</strong>" in html and "<strong>Excessive invariance</strong>" in html
    # One NSPGD strip of the board, the model page's own copy of the run's PNG.
    [src] = re.findall(r'<figure class="walk">\s*<img src="([^"]+)"', html)
    assert (board_site / src).is_file() and re.fullmatch(r"models/[^/]+/[^/]+/nspgd-strip-\d{5}\.png", src)
    assert "Do the axes agree?" in board and "ρ = " in board


def test_a_flagged_row_carries_a_caveat_beside_the_numbers_its_flag_concerns(board_site):
    board = _board_html(board_site)
    flagged = {f"mnist5k/{m.slug}" for m in MODELS if m.flagged}
    rows = dict(re.findall(r'<tr data-model="([^"]+)".*?>(.*?)</tr>', board, flags=re.S))
    assert flagged and flagged <= set(rows)
    for card_id, row in rows.items():
        cells = dict(re.findall(r'<td class="num" data-metric="([^"]+)"[^>]*>(.*?)</td>', row, flags=re.S))
        marked = {m for m, cell in cells.items() if 'class="caveat"' in cell}
        if card_id in flagged:
            assert marked == {"robust_accuracy_linf", "robust_accuracy_l2"}, card_id
            assert f'data-flag="{WEAKER}"' in row and ">masking?</a>" in row
            assert "likely too optimistic" in cells["robust_accuracy_linf"]
        else:
            assert marked == set() and "data-flag=" not in row, card_id
    legend = re.search(rf'<div class="legend" id="flags-{BOARD}">(.*?)</div>', board, flags=re.S).group(1)
    assert f"<code>{WEAKER}</code>: {flag_docs()[WEAKER]}" in legend


# --- in a browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the module (as tests/test_site_browser.py starts it)."""
    if webdriver is None:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    if not (shutil.which("chromium") and Path(CHROMEDRIVER).is_file()):
        pytest.skip(NO_BROWSER)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        browser.set_page_load_timeout(30)
        browser.set_window_size(1280, 900)
        yield browser
    finally:
        browser.quit()


def _open(driver, url: str, width: int = 1280, height: int = 900) -> None:
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:  # the window's frame differs between builds: make the viewport the size asked
        driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    driver.get_log("browser")
    driver.get("about:blank")  # a fresh document: a URL differing only in its fragment would not reload
    driver.get(url)
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [width, height]
    severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def _table(driver):
    return driver.find_element(By.ID, f"table-{BOARD}")


def _visible(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).filter(r => !r.hidden).map(r => r.dataset.model)",
        _table(driver),
    )


def _controls(driver):
    return driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{BOARD}"]')


def _unfold_filters(driver):
    """Open the board's "Filter and sort" (folded away on a phone) from the keyboard; the controls."""
    controls = _controls(driver)
    folder = controls.find_element(By.CSS_SELECTOR, "details.filters")
    if folder.get_attribute("open") is None:
        summary = folder.find_element(By.TAG_NAME, "summary")
        assert summary.is_displayed() and summary.text == "Filter and sort"
        summary.send_keys(Keys.ENTER)
        assert folder.get_attribute("open") is not None
    return controls


def _screenshot(driver, path: Path) -> None:
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")


def _screenshot_viewport(driver, path: Path) -> None:
    path.write_bytes(base64.b64decode(driver.get_screenshot_as_base64()))
    print(f"screenshot: {path}")


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("INVARBENCH_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_at_1280_px_every_metric_column_is_in_view_without_scrolling(driver, board_site, artifacts):
    _open(driver, (board_site / "index.html").as_uri())
    _screenshot(driver, artifacts / "site-boards-index-1280.png")
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.unranked")) == 1  # the fixture's smoke run
    for table in driver.find_elements(By.CSS_SELECTOR, "table.leaderboard, table.unranked"):
        wide, box = driver.execute_script(
            "var t = arguments[0]; return [t.scrollWidth, t.closest('.scroll').clientWidth]", table
        )
        assert wide <= box, (table.get_attribute("class"), wide, box)
    tables = driver.find_elements(By.CSS_SELECTOR, "table.leaderboard")
    assert len(tables) == 2
    page = driver.execute_script("return document.documentElement.clientWidth")
    for table in tables:
        heads = table.find_elements(By.CSS_SELECTOR, "thead th[data-metric]")
        assert len(heads) >= 8
        # Each metric column, its heading and the first row's cell, lies inside the table's box and the page.
        first = table.find_elements(By.CSS_SELECTOR, "tbody tr:first-child td[data-metric]")
        assert [td.get_attribute("data-metric") for td in first] == [th.get_attribute("data-metric") for th in heads]
        box = driver.execute_script(
            "var r = arguments[0].closest('.scroll').getBoundingClientRect(); return [r.left, r.right]", table
        )
        for element in heads + first:
            left, right = driver.execute_script(
                "var r = arguments[0].getBoundingClientRect(); return [r.left, r.right]", element
            )
            assert box[0] <= left and right <= box[1] <= page, (element.get_attribute("data-metric"), right, box)
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    # Names are shown whole (wrapped, none cut off), and the groups head their columns.
    cut = driver.execute_script(
        "return Array.from(document.querySelectorAll('#table-" + BOARD + " td.model a.name'), a => "
        "a.scrollHeight > a.clientHeight + 1 || a.scrollWidth > a.clientWidth + 1)"
    )
    assert len(cut) == 30 and not any(cut)
    groups = [th.text for th in _table(driver).find_elements(By.CSS_SELECTOR, "tr.groups th")]
    assert groups == ["Clean accuracy and calibration", "Sensitivity", "Invariance"]
    # An MNIST board of the current suites also has the two human-judged agreements: ten metric columns,
    # their cells as wide as the accuracies' (cloned from clean accuracy here). They fit too.
    wide, box = driver.execute_script(
        """var t = arguments[0], labels = ["Human agreement (relabelled) ↑", "Human agreement (unchanged) ↑"];
        var heads = t.tHead.rows[1], clean = heads.querySelector('th[data-metric=clean_accuracy]');
        labels.forEach(function (label, k) {
          var th = clean.cloneNode(true);
          th.dataset.metric = "human_" + k; th.querySelector("button").textContent = label;
          heads.insertBefore(th, heads.lastElementChild);
          Array.from(t.tBodies[0].rows).forEach(function (tr) {
            tr.insertBefore(tr.querySelector('td[data-metric=clean_accuracy]').cloneNode(true), tr.lastElementChild);
          });
        });
        t.tHead.rows[0].cells[t.tHead.rows[0].cells.length - 2].colSpan += 2;
        return [t.scrollWidth, t.closest('.scroll').clientWidth];""",
        _table(driver),
    )
    assert len(_table(driver).find_elements(By.CSS_SELECTOR, "thead th[data-metric]")) == 10
    assert wide <= box, (wide, box)


def test_at_390_px_a_card_per_model_no_page_scroll_and_a_number_on_the_first_screen(driver, board_site, artifacts):
    _open(driver, (board_site / "index.html").as_uri(), 390)
    _screenshot(driver, artifacts / "site-boards-index-390.png")
    inner = driver.execute_script("return window.innerWidth")
    assert driver.execute_script("return document.documentElement.scrollWidth") <= inner
    first = driver.execute_script(
        "var h = window.innerHeight; return Array.from(document.querySelectorAll('.num')).filter(function (e) {"
        "var r = e.getBoundingClientRect(); return r.height > 0 && r.top >= 0 && r.bottom <= h; })"
        ".map(e => e.textContent)"
    )
    assert any(re.search(r"\d+\.\d", t) for t in first), first
    # Every row a card: its cells stacked inside the window, none clipped.
    row = _table(driver).find_element(By.CSS_SELECTOR, "tbody tr")
    assert driver.execute_script("return getComputedStyle(arguments[0]).display", row) == "grid"
    for td in row.find_elements(By.TAG_NAME, "td"):
        right = driver.execute_script("return arguments[0].getBoundingClientRect().right", td)
        assert right <= inner, td.text
    # Phones sort with a menu, the headings being out of sight; it is under "Filter and sort".
    menu = Select(_unfold_filters(driver).find_element(By.CSS_SELECTOR, "select[data-sort-choice]"))
    menu.select_by_value("robust_accuracy_linf")
    values = _metric_order(driver, "robust_accuracy_linf")
    assert values == sorted(values, reverse=True)


def test_at_390_by_844_px_the_boards_first_screen_shows_the_first_models_numbers(driver, board_site, artifacts):
    """A phone's first screen of the board, from its heading down one 390 x 844 viewport: the heading, the
    protocol's one-line summary (the data and every method folded away), "Filter and sort" folded, and the
    first model's card with a number in view. The folded filters open from the keyboard, work, and keep the
    board's state in the URL."""
    index = (board_site / "index.html").as_uri()
    _open(driver, index, 390, 844)
    heading = driver.find_element(By.ID, f"board-{BOARD}")
    driver.execute_script("arguments[0].scrollIntoView()", heading)
    assert abs(driver.execute_script("return arguments[0].getBoundingClientRect().top", heading)) < 1
    _screenshot_viewport(driver, artifacts / "site-boards-board-390x844.png")
    protocol = driver.find_element(By.ID, f"protocol-{BOARD}")
    summary = protocol.find_element(By.CSS_SELECTOR, "p.in-short")
    assert summary.text.startswith("What was measured. In short: ") and summary.is_displayed()
    assert protocol.find_element(By.TAG_NAME, "details").get_attribute("open") is None
    assert not protocol.find_element(By.TAG_NAME, "dl").is_displayed()  # the digest and the methods, folded
    folder = _controls(driver).find_element(By.CSS_SELECTOR, "details.filters")
    assert folder.get_attribute("open") is None
    assert _controls(driver).find_element(By.CSS_SELECTOR, "a.compare").is_displayed()  # not folded away
    cells = _table(driver).find_elements(By.CSS_SELECTOR, "tbody tr:first-child td.num[data-metric]")
    in_view = driver.execute_script(
        "var h = window.innerHeight; return arguments[0].filter(function (td) {"
        "var r = td.getBoundingClientRect(); return r.height > 0 && r.top >= 0 && r.bottom <= h; })"
        ".map(td => td.textContent)",
        cells,
    )
    assert any(re.search(r"\d+\.\d", t) for t in in_view), in_view
    # The folded filters: opened from the keyboard, they filter, and the state goes into the URL.
    controls = _unfold_filters(driver)
    Select(controls.find_element(By.CSS_SELECTOR, 'select[data-filter="training"]')).select_by_value("trades")
    trades = sorted(f"mnist5k/{m.slug}" for m in MODELS if m.method == "trades")
    assert sorted(_visible(driver)) == trades and "training=trades" in driver.current_url
    # A shared link on a phone: the board filtered, the filters folded, the count saying so.
    _open(driver, driver.current_url, 390, 844)
    assert sorted(_visible(driver)) == trades
    assert _controls(driver).find_element(By.CSS_SELECTOR, "details.filters").get_attribute("open") is None
    assert f"{len(trades)} of 30 models shown" in _controls(driver).find_element(By.CLASS_NAME, "count").text
    # Wider than a phone, the filters open (and their fold's summary is not shown).
    driver.set_window_size(1280, 900)
    folder = _controls(driver).find_element(By.CSS_SELECTOR, "details.filters")
    assert folder.get_attribute("open") is not None and not folder.find_element(By.TAG_NAME, "summary").is_displayed()
    assert _controls(driver).find_element(By.CSS_SELECTOR, 'select[data-filter="training"]').is_displayed()


def test_the_filters_pick_training_family_and_flag_and_say_when_nothing_matches(driver, board_site):
    _open(driver, (board_site / "index.html").as_uri())
    controls = _controls(driver)
    assert controls.is_displayed()
    Select(controls.find_element(By.CSS_SELECTOR, 'select[data-filter="training"]')).select_by_value("trades")
    assert sorted(_visible(driver)) == sorted(f"mnist5k/{m.slug}" for m in MODELS if m.method == "trades")
    assert f"{len(_visible(driver))} of 30 models shown" in controls.find_element(By.CLASS_NAME, "count").text
    family = Select(controls.find_element(By.CSS_SELECTOR, 'select[data-filter="family"]'))
    family.select_by_value("Wide ResNet")
    both = sorted(f"mnist5k/{m.slug}" for m in MODELS if m.method == "trades" and m.arch.startswith("wide_resnet"))
    assert both and sorted(_visible(driver)) == both
    Select(controls.find_element(By.CSS_SELECTOR, 'select[data-filter="training"]')).select_by_value("")
    family.select_by_value("")
    Select(controls.find_element(By.CSS_SELECTOR, 'select[data-filter="flag"]')).select_by_value(WEAKER)
    assert sorted(_visible(driver)) == sorted(f"mnist5k/{m.slug}" for m in MODELS if m.flagged)
    message = driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{BOARD}"] + .no-match')
    assert not message.is_displayed()
    box = controls.find_element(By.CSS_SELECTOR, "input.filter")
    box.send_keys("no model is called this")
    assert _visible(driver) == [] and message.is_displayed() and "No evaluated model" in message.text
    message.find_element(By.TAG_NAME, "button").click()
    assert len(_visible(driver)) == 30 and not message.is_displayed() and box.get_property("value") == ""


def _metric_order(driver, metric: str) -> list[float]:
    return [
        float(v)
        for v in driver.execute_script(
            "return Array.from(arguments[0].tBodies[0].rows, r => r.querySelector('[data-metric=' + arguments[1] + ']')"
            ".dataset.sort)",
            _table(driver),
            metric,
        )
    ]


def test_headings_sort_from_the_keyboard_and_say_so_with_aria_sort(driver, board_site):
    _open(driver, (board_site / "index.html").as_uri())
    table = _table(driver)
    rank = table.find_element(By.CSS_SELECTOR, 'th[data-key="rank"]')
    assert rank.get_attribute("aria-sort") == "ascending"  # the board's own order
    th = table.find_element(By.CSS_SELECTOR, 'th[data-key="ece"]')
    button = th.find_element(By.TAG_NAME, "button")
    button.send_keys(Keys.ENTER)  # a button: Enter and Space work, and Tab reaches it
    assert th.get_attribute("aria-sort") == "ascending" and rank.get_attribute("aria-sort") is None
    assert _metric_order(driver, "ece") == sorted(_metric_order(driver, "ece"))  # lower is better: best first
    button.send_keys(Keys.SPACE)
    assert th.get_attribute("aria-sort") == "descending"
    assert _metric_order(driver, "ece") == sorted(_metric_order(driver, "ece"), reverse=True)
    # Tab moves from heading to heading.
    driver.execute_script("arguments[0].focus()", table.find_element(By.CSS_SELECTOR, 'th[data-key="model"] button'))
    driver.switch_to.active_element.send_keys(Keys.TAB)
    after = driver.switch_to.active_element
    assert (
        after.tag_name == "button" and after.find_element(By.XPATH, "..").get_attribute("data-key") == "clean_accuracy"
    )


def test_a_filtered_sorted_board_is_shared_by_its_url(driver, board_site):
    index = (board_site / "index.html").as_uri()
    _open(driver, index)
    controls = _controls(driver)
    Select(controls.find_element(By.CSS_SELECTOR, 'select[data-filter="training"]')).select_by_value("pgd-at")
    controls.find_element(By.CSS_SELECTOR, "input.filter").send_keys("resnet")
    _table(driver).find_element(By.CSS_SELECTOR, 'th[data-key="path_width"] button').click()
    order = _visible(driver)
    assert len(order) >= 2
    widths = [
        w
        for w, m in zip(
            _metric_order(driver, "path_width"),
            driver.execute_script(
                "return Array.from(arguments[0].tBodies[0].rows, r => r.dataset.model)", _table(driver)
            ),
            strict=True,
        )
        if m in order
    ]
    assert widths == sorted(widths, reverse=True)
    url = driver.current_url
    assert f"#board-{BOARD}?" in url and "training=pgd-at" in url and "sort=path_width" in url
    _open(driver, url)  # the shared link, opened afresh
    assert _visible(driver) == order
    controls = _controls(driver)
    assert controls.find_element(By.CSS_SELECTOR, "input.filter").get_property("value") == "resnet"
    th = _table(driver).find_element(By.CSS_SELECTOR, 'th[data-key="path_width"]')
    assert th.get_attribute("aria-sort") == "descending"
    # A hand-written link: the flagged models, worst clean accuracy first.
    _open(driver, f"{index}#board-{BOARD}?flag={WEAKER}&sort=clean_accuracy&order=asc")
    shown = _visible(driver)
    assert sorted(shown) == sorted(f"mnist5k/{m.slug}" for m in MODELS if m.flagged)
    values = {
        m: v
        for m, v in zip(
            driver.execute_script(
                "return Array.from(arguments[0].tBodies[0].rows, r => r.dataset.model)", _table(driver)
            ),
            _metric_order(driver, "clean_accuracy"),
            strict=True,
        )
    }
    assert [values[m] for m in shown] == sorted(values[m] for m in shown)
    assert not any(math.isnan(v) for v in values.values())


def test_compare_selected_links_to_the_boards_compare_page(driver, board_site):
    _open(driver, (board_site / "index.html").as_uri())
    link = _controls(driver).find_element(By.CSS_SELECTOR, "a.compare")
    assert link.get_attribute("href") is None and link.get_attribute("aria-disabled") == "true"
    boxes = _table(driver).find_elements(By.CSS_SELECTOR, "input.pick")
    boxes[0].click()
    assert link.get_attribute("href") is None  # one model is no comparison
    boxes[3].click()
    rows = _table(driver).find_elements(By.CSS_SELECTOR, "tbody tr")
    names = [rows[i].get_attribute("data-model").split("/", 1)[1] for i in (0, 3)]
    assert link.get_attribute("href").endswith(f"compare-{BOARD}.html?models={names[0]},{names[1]}")
    assert link.get_attribute("aria-disabled") is None


def test_one_training_option_picks_every_adversarially_trained_model_and_stays_in_the_url(driver, board_site):
    """ "adversarially trained (any)": the card schema's adversarial methods (certified training included) in
    one option; with a sort by path width the most invariant of them is first, and a shared link keeps both."""
    from invarbench.cards.schema import ADVERSARIAL_METHODS, TRAINING_METHODS
    from invarbench.site.boards import ALL_TRAINING_HELP

    choices = {c.value: c for c in training_choices({m.method for m in MODELS})}
    assert "certified" in ADVERSARIAL_METHODS
    adversarial = [m for m in MODELS if m.method in ADVERSARIAL_METHODS]
    assert {m.method for m in adversarial} == {"pgd-at", "trades", "certified"}  # and not "other" or "standard"
    _open(driver, (board_site / "index.html").as_uri())
    menu = Select(_controls(driver).find_element(By.CSS_SELECTOR, 'select[data-filter="training"]'))
    option = next(o for o in menu.options if o.get_attribute("value") == ADVERSARIAL_CHOICE)
    assert option.text == "adversarially trained (any, incl. certified)"
    menu.select_by_value(ADVERSARIAL_CHOICE)  # the first click (the menu), the second: the heading
    _table(driver).find_element(By.CSS_SELECTOR, 'th[data-key="path_width"] button').click()
    shown = _visible(driver)
    assert sorted(shown) == sorted(f"mnist5k/{m.slug}" for m in adversarial)
    widths = dict(
        zip(
            driver.execute_script(
                "return Array.from(arguments[0].tBodies[0].rows, r => r.dataset.model)", _table(driver)
            ),
            _metric_order(driver, "path_width"),
            strict=True,
        )
    )
    assert shown[0] == max(shown, key=widths.get)
    assert [widths[m] for m in shown] == sorted((widths[m] for m in shown), reverse=True)
    url = driver.current_url
    assert f"training={ADVERSARIAL_CHOICE}&" in url and "sort=path_width" in url
    _open(driver, url)
    assert _visible(driver) == shown
    menu = Select(_controls(driver).find_element(By.CSS_SELECTOR, 'select[data-filter="training"]'))
    assert menu.first_selected_option.get_attribute("value") == ADVERSARIAL_CHOICE
    help_line = _controls(driver).find_element(By.CSS_SELECTOR, ".training-help")
    assert help_line.is_displayed() and help_line.text == choices[ADVERSARIAL_CHOICE].help  # restored with the URL
    # A single method still picks only its own, and its meaning in the card schema's words shows under the menu.
    menu.select_by_value("certified")
    assert sorted(_visible(driver)) == sorted(f"mnist5k/{m.slug}" for m in MODELS if m.method == "certified")
    assert help_line.text == f"certified: {TRAINING_METHODS['certified']}"
    # The group without certified training, in the URL and back.
    menu.select_by_value(UNCERTIFIED_CHOICE)
    uncertified = sorted(f"mnist5k/{m.slug}" for m in adversarial if m.method != "certified")
    assert sorted(_visible(driver)) == uncertified and help_line.text == choices[UNCERTIFIED_CHOICE].help
    url = driver.current_url
    assert f"training={UNCERTIFIED_CHOICE}&" in url or url.endswith(f"training={UNCERTIFIED_CHOICE}")
    _open(driver, url)
    menu = Select(_controls(driver).find_element(By.CSS_SELECTOR, 'select[data-filter="training"]'))
    assert menu.first_selected_option.get_attribute("value") == UNCERTIFIED_CHOICE
    assert sorted(_visible(driver)) == uncertified
    assert _controls(driver).find_element(By.CSS_SELECTOR, ".training-help").text == choices[UNCERTIFIED_CHOICE].help
    menu.select_by_value("")
    assert _controls(driver).find_element(By.CSS_SELECTOR, ".training-help").text == ALL_TRAINING_HELP


def test_at_390_px_the_training_menu_shows_its_chosen_option_whole_and_what_it_means(driver, board_site):
    """A phone cannot hover for a title: the chosen option's meaning is a line under the menu, and the menu is
    as wide as the controls, so that the longest option reads whole."""
    _open(driver, (board_site / "index.html").as_uri(), 390, 844)
    controls = _unfold_filters(driver)
    element = controls.find_element(By.CSS_SELECTOR, 'select[data-filter="training"]')
    menu = Select(element)
    menu.select_by_value(ADVERSARIAL_CHOICE)
    help_line = controls.find_element(By.CSS_SELECTOR, ".training-help")
    assert help_line.is_displayed() and help_line.text.startswith("adversarially trained (any, incl. certified): ")
    fields = controls.find_element(By.CSS_SELECTOR, ".fields")
    assert element.rect["width"] >= fields.rect["width"] - 1
    # The option's text in the menu's font, plus the padding and the arrow, fits the menu's width.
    for option in menu.options:
        needed = driver.execute_script(
            "var s = getComputedStyle(arguments[0]), c = document.createElement('canvas').getContext('2d');"
            "c.font = s.fontSize + ' ' + s.fontFamily; return c.measureText(arguments[1]).width"
            " + parseFloat(s.paddingLeft) + parseFloat(s.paddingRight) + 24",
            element,
            option.text,
        )
        assert needed <= element.rect["width"], (option.text, needed, element.rect["width"])


def test_a_sort_in_the_url_without_an_order_puts_the_best_first_as_the_headings_first_click_does(driver, board_site):
    """One rule for the first order of every column: the best first (ascending for ranks, names and "lower is
    better" columns, descending otherwise), whether the heading is clicked or a URL names the sort alone."""
    index = (board_site / "index.html").as_uri()
    _open(driver, index)
    keys = [th.get_attribute("data-key") for th in _table(driver).find_elements(By.CSS_SELECTOR, "thead th.sortable")]
    assert {"rank", "model", "ece", "nspgd_closure", "path_width"} <= set(keys)
    for k in keys:
        _open(driver, index)
        th = _table(driver).find_element(By.CSS_SELECTOR, f'th[data-key="{k}"]')
        if k != "rank":  # rank is the board's own order: its first click reverses it
            th.find_element(By.TAG_NAME, "button").click()
        clicked, order = th.get_attribute("aria-sort"), _visible(driver)
        if k == "rank":
            clicked = "ascending"
        _open(driver, f"{index}#board-{BOARD}?sort={k}")
        th = _table(driver).find_element(By.CSS_SELECTOR, f'th[data-key="{k}"]')
        first = th.get_attribute("data-first")
        assert th.get_attribute("aria-sort") == clicked == {"asc": "ascending", "desc": "descending"}[first], k
        if k != "rank":
            assert _visible(driver) == order, k
    # NSPGD closure is "lower is better": its best first is the least invariant model.
    _open(driver, f"{index}#board-{BOARD}?sort=nspgd_closure")
    assert _metric_order(driver, "nspgd_closure") == sorted(_metric_order(driver, "nspgd_closure"))


def test_at_390_px_the_order_menu_puts_the_most_excessively_invariant_model_first(driver, board_site):
    """Phones sort with a menu and set the direction with another: NSPGD closure, highest first, puts the
    most excessively invariant model first, and a shared link keeps both."""
    _open(driver, (board_site / "index.html").as_uri(), 390, 844)
    controls = _unfold_filters(driver)
    order = Select(controls.find_element(By.CSS_SELECTOR, "select[data-order-choice]"))
    assert order.first_selected_option.get_attribute("value") == "asc"  # rank 1 first
    assert controls.find_element(By.CSS_SELECTOR, "select[data-order-choice]").is_displayed()
    Select(controls.find_element(By.CSS_SELECTOR, "select[data-sort-choice]")).select_by_value("nspgd_closure")
    assert order.first_selected_option.get_attribute("value") == "asc"  # lower is better: the best first
    assert _metric_order(driver, "nspgd_closure") == sorted(_metric_order(driver, "nspgd_closure"))
    order.select_by_value("desc")
    assert order.first_selected_option.text == "highest first"
    closures = _metric_order(driver, "nspgd_closure")
    assert closures == sorted(closures, reverse=True)
    url = driver.current_url
    assert "sort=nspgd_closure" in url and "order=desc" in url
    _open(driver, url, 390, 844)
    assert _metric_order(driver, "nspgd_closure") == closures
    assert (
        Select(
            _controls(driver).find_element(By.CSS_SELECTOR, "select[data-order-choice]")
        ).first_selected_option.get_attribute("value")
        == "desc"
    )
    # At 1,280 px the headings sort: the menus are not shown.
    _open(driver, (board_site / "index.html").as_uri())
    assert not _controls(driver).find_element(By.CSS_SELECTOR, "select[data-order-choice]").is_displayed()


def test_on_a_phone_compare_selected_stays_in_reach_while_a_model_is_ticked(driver, board_site):
    """Ticking a card far below the controls keeps "Compare selected (N)" at the window's bottom, with room
    below the page's end so that it covers nothing for good, and no serious axe-core violation; unticking
    every card puts it back among the controls."""
    from test_site_a11y import _axe

    _open(driver, (board_site / "index.html").as_uri(), 390, 844)
    link = _controls(driver).find_element(By.CSS_SELECTOR, "a.compare")

    def in_view() -> bool:
        top, bottom = driver.execute_script(
            "var r = arguments[0].getBoundingClientRect(); return [r.top, r.bottom]", link
        )
        return link.is_displayed() and top >= 0 and bottom <= driver.execute_script("return window.innerHeight")

    boxes = _table(driver).find_elements(By.CSS_SELECTOR, "input.pick")
    for k, i in enumerate((12, 20)):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", boxes[i])
        boxes[i].click()
        assert boxes[i].is_selected() and in_view(), i
        assert link.text == f"Compare selected ({k + 1})"
    assert "compare-" in link.get_attribute("href") and link.get_attribute("aria-disabled") is None
    # The page's end: the last line is above the bar.
    driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    bar_top = driver.execute_script("return arguments[0].getBoundingClientRect().top", link)
    footer_bottom = driver.execute_script("return document.querySelector('footer').getBoundingClientRect().bottom")
    assert footer_bottom <= bar_top + 1, (footer_bottom, bar_top)
    assert _axe(driver) == []
    for i in (12, 20):
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", boxes[i])
        boxes[i].click()
    assert driver.execute_script("return getComputedStyle(arguments[0]).position", link) != "fixed"
    assert driver.execute_script("return getComputedStyle(document.body).paddingBottom") == "0px"


def test_a_median_distance_of_0_is_flagged_only_below_half_clean_accuracy():
    """The condition is the row's clean accuracy (a misclassified image counts as distance 0, so below one half
    the median is 0): below 0.5 yes, at and above no, and no where a number is missing."""
    from types import SimpleNamespace

    def row(clean: float | None, distance: float | None = 0.0):
        metrics = {}
        if clean is not None:
            metrics["clean_accuracy"] = SimpleNamespace(value=clean)
        if distance is not None:
            metrics["median_min_l2_distance"] = SimpleNamespace(value=distance)
        return SimpleNamespace(metrics=metrics)

    assert median_distance_is_zero(row(0.312))
    assert median_distance_is_zero(row(0.499, 0.01))
    assert not median_distance_is_zero(row(0.5, 0.0))
    assert not median_distance_is_zero(row(0.915, 0.2))
    assert not median_distance_is_zero(row(None))
    assert not median_distance_is_zero(row(0.3, None))


@pytest.fixture(scope="module")
def low_accuracy_site(tmp_path_factory) -> Path:
    """A board of two models, one classifying fewer than half its images correctly (600 more errors of the
    1,000), one most of them; the folder of its ``index.html``."""
    from site_fixtures import FixtureModel, S, write_fixture_results

    from invarbench.site.build import build_site_from_results

    low = FixtureModel("lenet-low", "LeNet-5 (under-trained)", S, "lenet", "standard", errors=600)
    high = FixtureModel("lenet-high", "LeNet-5 (trained)", S, "lenet", "standard", errors=5, l2=0.15)
    results = tmp_path_factory.mktemp("low-accuracy") / "results"
    write_fixture_results(results, [(low, "mnist5k", False), (high, "mnist5k", False)])
    out = tmp_path_factory.mktemp("low-accuracy-site") / "site"
    build_site_from_results(results, out, cards_dir=tmp_path_factory.mktemp("no-cards"))
    return out


@pytest.mark.parametrize("width", [1280, 390])
def test_a_median_distance_of_0_from_a_clean_accuracy_below_half_is_explained_on_its_cell(
    driver, low_accuracy_site, width
):
    """The model below 50 % clean accuracy has a median minimal distance of 0: its cell says why (a † and a
    note, on the table's row and on the phone's card) and a line under the table explains the †; the model
    above 50 % gets neither."""
    _open(driver, (low_accuracy_site / "index.html").as_uri(), width, 900)
    rows = {tr.get_attribute("data-model"): tr for tr in _table(driver).find_elements(By.CSS_SELECTOR, "tbody tr")}
    low, high = rows["mnist5k/lenet-low"], rows["mnist5k/lenet-high"]
    clean = {
        k: float(tr.find_element(By.CSS_SELECTOR, 'td[data-metric="clean_accuracy"]').get_attribute("data-sort"))
        for k, tr in rows.items()
    }
    assert clean["mnist5k/lenet-low"] < 0.5 < clean["mnist5k/lenet-high"], clean
    cell = low.find_element(By.CSS_SELECTOR, 'td[data-metric="median_min_l2_distance"]')
    assert float(cell.get_attribute("data-sort")) == 0.0
    note = cell.find_element(By.CSS_SELECTOR, ".zero-note")
    assert note.is_displayed() and "fewer than half the images are classified correctly" in note.text
    assert note.text.startswith("† 0:") and "†" in cell.find_element(By.CSS_SELECTOR, ".zero-mark").text
    other = high.find_element(By.CSS_SELECTOR, 'td[data-metric="median_min_l2_distance"]')
    assert float(other.get_attribute("data-sort")) > 0 and "†" not in other.text
    assert other.find_elements(By.CSS_SELECTOR, ".zero-note") == []
    legend = driver.find_element(By.ID, f"zero-{BOARD}")
    assert legend.is_displayed() and legend.text.startswith("† Median min. L2 distance of 0")
    assert "clean accuracy below 50 %" in legend.text
    # The note lies inside the cell (the card's box at 390 px), not cut or spilling.
    inner = driver.execute_script(
        "var c = arguments[0].getBoundingClientRect(), n = arguments[1].getBoundingClientRect();"
        "return n.left >= c.left - 1 && n.right <= c.right + 1 && n.width > 0",
        cell,
        note,
    )
    assert inner
    from test_site_a11y import _axe

    assert _axe(driver) == []


def test_at_390_px_every_tick_box_is_a_tap_target_of_24_px_at_least(driver, board_site):
    """WCAG 2.5.8: each card's "select to compare" box is at least 24 x 24 CSS px on a phone, and a tap on it
    ticks it."""
    _open(driver, (board_site / "index.html").as_uri(), 390, 844)
    boxes = _table(driver).find_elements(By.CSS_SELECTOR, "input.pick")
    assert len(boxes) == 30
    for box in boxes:
        rect = box.rect
        assert rect["width"] >= 24 and rect["height"] >= 24, (box.get_attribute("value"), rect)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", boxes[2])
    boxes[2].click()
    assert boxes[2].is_selected()
    boxes[2].click()
