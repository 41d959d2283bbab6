"""The static site in a real browser: a headless Chromium driven by Selenium.

Pages load with no console error and no missing target, the leaderboard's headers sort it, the
filter box filters it, a hostile card name stays text, and a phone-width index does not overflow, its
leaderboard a card per model (screenshots of the index at 390 and 1,280 px are kept as test artefacts, under
``$INVARBENCH_ARTIFACTS`` or the test's tmp folder; the path is printed: see it with ``-rA`` or ``-s``).

Needs Debian's ``chromium`` and ``chromium-driver`` (``bash .ci/install-browser.sh``) and selenium
(the dev extra); without them every test here skips, with the reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse
from urllib.request import url2pathname

import pytest

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the dev extra is not installed: the fixture skips
    webdriver = None

from invarbench.site.build import build_site, build_site_from_results
from invarbench.store import Store

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian's chromium-driver
NO_BROWSER = "no chromium/chromedriver: install Debian's chromium and chromium-driver (.ci/install-browser.sh)"
HOSTILE = "<script>alert(1)</script>"

# Every element that names another resource or place, with what it names (src, href or SVG's xlink:href).
_TARGETS_JS = """
var out = [];
document.querySelectorAll("a, area, img, script[src], link[href], iframe, source, image, use").forEach(function (el) {
  var raw = el.getAttribute("src");
  if (raw === null) raw = el.getAttribute("href");
  if (raw === null) raw = el.getAttributeNS("http://www.w3.org/1999/xlink", "href");
  if (raw === null) return;
  var img = el.tagName.toLowerCase() === "img";
  out.push({tag: el.tagName.toLowerCase(), raw: raw, loaded: img ? el.complete && el.naturalWidth > 0 : null});
});
return out;
"""


@pytest.fixture(scope="module")
def driver():
    """One headless Chromium for the whole module (starting one takes about a second)."""
    if webdriver is None:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    if not (shutil.which("chromium") and Path(CHROMEDRIVER).is_file()):
        pytest.skip(NO_BROWSER)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, read with get_log
    options.unhandled_prompt_behavior = "ignore"  # an alert stays open for the test to see, never dismissed
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        browser.set_page_load_timeout(30)
        browser.set_window_size(1280, 900)
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built from the published results files."""
    out = tmp_path_factory.mktemp("browser-site") / "site"
    build_site_from_results(RESULTS, out)
    return out


def _load(driver, page: Path) -> list[dict]:
    """Open ``page`` and return the console entries of its loading."""
    driver.get_log("browser")  # drain what earlier pages logged
    driver.get(page.as_uri())
    return driver.get_log("browser")


# The sorting and filtering tests read one board: the reference LeNets', whose values have no ties, so both
# orders are determined. tests/test_site_boards.py drives a 30-model board.
BOARD = "#table-mnist5k-standard-v5"


def _rows(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, f"{BOARD} tbody tr")


def _order(driver) -> list[str]:
    return [tr.get_attribute("data-model") for tr in _rows(driver)]


def _file_of(url: str) -> Path:
    return Path(url2pathname(unquote(urlparse(url).path)))


def _ids(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


def _page_problems(driver, site: Path, page: Path) -> list[str]:
    """What is wrong with ``page`` in the browser: console errors, missing files and fragments, images
    that did not load, links out of the site or over plain http."""
    name = page.relative_to(site).as_posix()
    problems = [f"{name}: console {e['source']}: {e['message']}" for e in _load(driver, page) if e["level"] == "SEVERE"]
    if driver.execute_script("return document.readyState") != "complete":
        problems.append(f"{name}: did not finish loading")
    here_ids = set(driver.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)"))
    for target in driver.execute_script(_TARGETS_JS):
        raw = target["raw"]
        url, fragment = urldefrag(urljoin(page.as_uri(), raw))
        scheme = urlparse(url).scheme
        if scheme == "https":
            continue  # the Hub and papers: tests/test_site.py checks which hosts are allowed
        if scheme != "file":
            problems.append(f"{name}: <{target['tag']}> {raw!r} is neither in the site nor https")
            continue
        path = _file_of(url)
        if not path.is_file():
            problems.append(f"{name}: <{target['tag']}> {raw!r}: no file {path}")
            continue
        if not path.resolve().is_relative_to(site.resolve()):
            problems.append(f"{name}: <{target['tag']}> {raw!r} leaves the site: {path}")
        ids = here_ids if path.resolve() == page.resolve() else _ids(path) if path.suffix == ".html" else None
        if fragment and ids is not None and unquote(fragment) not in ids:
            problems.append(f"{name}: <{target['tag']}> {raw!r}: no element with id {fragment!r}")
        if target["loaded"] is False:
            problems.append(f"{name}: <img> {raw!r} did not load")
    return problems


def test_every_page_loads_with_no_console_error_and_no_missing_target(driver, site):
    index = site / "index.html"
    problems = _page_problems(driver, site, index)
    # Every model page on disk is linked from the index (and only those), so all of them get checked.
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.leaderboard a[href]'), a => a.getAttribute('href'))"
    )
    linked = {_file_of(urldefrag(urljoin(index.as_uri(), h))[0]).resolve() for h in hrefs if "models/" in h}
    pages = sorted(site.glob("models/*/*.html"))
    assert len(pages) >= 2
    assert linked == {p.resolve() for p in pages}
    for page in pages:
        problems += _page_problems(driver, site, page)
        assert driver.find_element(By.TAG_NAME, "h1").text, page  # the page rendered, under its model's name
    assert problems == []


def _column_value(text: str):
    """A cell's sort value as the reader sees it: its first number, else its text."""
    number = re.search(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return float(number.group(0)) if number else text.lower()


@pytest.mark.parametrize(
    ("heading", "first"),
    [("Model", "asc"), ("Robust accuracy (L∞)", "desc"), ("ECE", "asc")],
    ids=["model", "robust-accuracy-linf", "ece-lower-is-better"],
)
def test_a_click_on_a_column_heading_sorts_the_best_first_then_the_other_way(driver, site, heading, first):
    """The first click puts the best first (descending where higher is better; ascending for names, ranks and
    columns where lower is better); the second click reverses it."""
    _load(driver, site / "index.html")
    [th] = [
        th for th in driver.find_elements(By.CSS_SELECTOR, f"{BOARD} th.sortable") if th.text.rstrip(" ↑↓") == heading
    ]
    column = th.get_property("cellIndex")
    before = _order(driver)
    assert len(before) >= 2

    def cell(tr):  # the Model column by its model's name (the link), a metric by its value
        td = tr.find_elements(By.TAG_NAME, "td")[column]
        return td.find_element(By.TAG_NAME, "a").text.lower() if heading == "Model" else _column_value(td.text)

    values = {tr.get_attribute("data-model"): cell(tr) for tr in _rows(driver)}
    assert len(set(values.values())) == len(values), values  # no ties: both orders are determined
    descending = sorted(values, key=values.get, reverse=True)
    ascending = descending[::-1]

    assert th.get_attribute("data-first") == first
    one, two = (ascending, descending) if first == "asc" else (descending, ascending)
    th.click()
    assert _order(driver) == one
    th.click()
    assert _order(driver) == two
    assert before != descending or before != ascending  # at least one click moved rows
    assert sorted(_order(driver)) == sorted(before)  # sorting neither loses nor duplicates a row


def test_the_filter_box_hides_the_rows_that_do_not_match_and_clearing_it_shows_them_all(driver, site):
    _load(driver, site / "index.html")
    box = driver.find_element(By.CSS_SELECTOR, f'input.filter[data-table="{BOARD[1:]}"]')
    assert box.is_displayed()  # hidden in the HTML, shown by the page's script
    models = _order(driver)
    assert len(models) >= 2
    for model in models:
        box.send_keys(model.split("/")[-1].upper())  # part of the id, in other case: matching ignores case
        shown = [tr.get_attribute("data-model") for tr in _rows(driver) if tr.is_displayed()]
        assert shown == [model]
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)
        assert box.get_property("value") == ""
        assert all(tr.is_displayed() for tr in _rows(driver))
    box.send_keys("no model is called this")
    assert not any(tr.is_displayed() for tr in _rows(driver))


def test_a_card_named_like_a_script_renders_as_text_and_runs_nothing(driver, tmp_path):
    from invarbench.store.documents import content_digest
    from invarbench.store.results_files import import_path

    path = next((RESULTS / "mnist5k").glob("lenet-standard__standard-v*.json"))
    doc = json.loads(path.read_text())
    doc["artifacts"] = []  # a copy elsewhere: without the files beside the original
    old = doc["model"]["name"]
    assert f"name: {old}" in doc["model"]["card_yaml"]
    doc["model"]["name"] = HOSTILE
    doc["model"]["card_yaml"] = doc["model"]["card_yaml"].replace(f"name: {old}", f"name: {HOSTILE}")
    doc["model"]["card_sha256"] = hashlib.sha256(doc["model"]["card_yaml"].encode()).hexdigest()
    doc["content_sha256"] = content_digest(doc)
    hostile = tmp_path / "hostile.json"
    hostile.write_text(json.dumps(doc))
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        import_path(store, hostile)
        build_site(store, tmp_path / "site")
    finally:
        store.close()
    pages = [tmp_path / "site" / "index.html", *sorted((tmp_path / "site").glob("models/*/*.html"))]
    assert len(pages) == 2
    for page in pages:
        _load(driver, page)
        try:
            alert = driver.switch_to.alert
        except NoAlertPresentException:
            pass
        else:
            text = alert.text
            alert.accept()
            pytest.fail(f"{page.name} ran the card's name as a script: alert({text!r})")
        assert HOSTILE in driver.find_element(By.TAG_NAME, "body").text, page.name
        scripts = driver.execute_script("return Array.from(document.scripts, s => s.textContent)")
        assert not any("alert(1)" in s for s in scripts), page.name
    # On the model page the name is the heading, as written.
    assert driver.find_element(By.TAG_NAME, "h1").text == HOSTILE


def _full_page_png(driver) -> bytes:
    """The whole page, not only the window's viewport (Chromium's DevTools protocol)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    return base64.b64decode(shot["data"])


def test_screenshots_of_the_index_and_no_page_wider_than_a_phone(driver, site, tmp_path):
    artifacts = Path(os.environ.get("INVARBENCH_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        for width in (390, 1280):
            driver.set_window_size(width, 900)
            _load(driver, site / "index.html")
            assert driver.execute_script("return window.innerWidth") == width
            shot = artifacts / f"site-index-{width}.png"
            shot.write_bytes(_full_page_png(driver))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            print(f"screenshot of the index at {width} px: {shot}")
        # At 390 px no page is wider than the window: the wide tables scroll inside their own boxes.
        driver.set_window_size(390, 900)
        for page in [site / "index.html", *sorted(site.glob("models/*/*.html"))]:
            _load(driver, page)
            body, document, inner = driver.execute_script(
                "return [document.body.scrollWidth, document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert body <= inner + 1 and document <= inner + 1, (page.name, body, document, inner)
        _load(driver, site / "index.html")
        table, box, row = driver.execute_script(
            "var t = document.querySelector('table.leaderboard'), b = t.closest('.scroll');"
            "return [t.scrollWidth, b.clientWidth, getComputedStyle(t.tBodies[0].rows[0]).display]"
        )
        assert table <= box and row == "grid"  # on a phone the leaderboard is a card per model, not a clipped table
    finally:
        driver.set_window_size(1280, 900)


# The published CIFAR-10 board: its training methods include both a group and a method called 'adversarial'.
CIFAR = "cifar10-standard-v4"


def _shown(driver, board: str) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows).filter(r => !r.hidden)"
        ".map(r => r.dataset.model)",
        f"table-{board}",
    )


def _reload(driver, url: str) -> None:
    driver.get("about:blank")  # a fresh document: a URL differing only in its fragment would not reload
    driver.get(url)


def test_every_training_option_is_restored_exactly_by_the_url_it_writes(driver, site):
    """Each option of the training filter, chosen, writes the board's URL; that URL, opened afresh, chooses
    the same option and shows the same rows (the group "adversarially trained (any)" and the card method
    'adversarial' are two options)."""
    from selenium.webdriver.support.ui import Select

    _load(driver, site / "index.html")
    menu = f'.controls[data-board="{CIFAR}"] select[data-filter="training"]'
    values = [o.get_attribute("value") for o in Select(driver.find_element(By.CSS_SELECTOR, menu)).options]
    assert "adversarial" in values and len(values) == len(set(values)) >= 4
    for value in values[1:]:
        _reload(driver, (site / "index.html").as_uri())
        Select(driver.find_element(By.CSS_SELECTOR, menu)).select_by_value(value)
        shown, url = _shown(driver, CIFAR), driver.current_url
        assert shown and f"training={value}" in url, value
        _reload(driver, url)
        assert Select(driver.find_element(By.CSS_SELECTOR, menu)).first_selected_option.get_attribute("value") == value
        assert _shown(driver, CIFAR) == shown, value


def test_at_1280_px_every_models_name_is_shown_whole(driver, site):
    """Names that start alike (two of Wong et al.'s networks differ only in their threat model, at the end)
    are told apart without hovering: no name on a board is cut off, and no two read the same."""
    driver.set_window_size(1280, 900)
    _load(driver, site / "index.html")
    boards = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.leaderboard'), t => Array.from("
        "t.querySelectorAll('td.model a.name'), a => [a.innerText, a.scrollHeight > a.clientHeight + 1"
        " || a.scrollWidth > a.clientWidth + 1]))"
    )
    assert len(boards) >= 2
    for names in boards:
        assert not [text for text, cut in names if cut]
        assert len({text for text, _ in names}) == len(names)


def test_a_filter_that_finds_no_evaluated_model_names_the_pending_ones_it_would_find(driver, tmp_path):
    """A registered card not yet evaluated is named right under the board's heading, and in the empty result
    of a filter or search that matches it (architecture family, training, words of its name)."""
    cards = tmp_path / "cards"
    shutil.copytree(RESULTS.parents[1] / "model_cards", cards)
    card = (cards / "cifar10" / "akamaster-resnet20.yaml").read_text(encoding="utf-8")
    name = "ResNet-20 (He et al.'s CIFAR ResNet; standard training, Idelbayev)"
    assert f'id: cifar10/akamaster-resnet20\nname: "{name}"' in card
    (cards / "cifar10" / "pending-resnet.yaml").write_text(
        card.replace("id: cifar10/akamaster-resnet20", "id: cifar10/pending-resnet").replace(name, "Zeta ResNet"),
        encoding="utf-8",
    )
    out = tmp_path / "site"
    build_site_from_results(RESULTS, out, cards_dir=cards)
    index = (out / "index.html").as_uri()
    _load(driver, out / "index.html")
    short = driver.find_element(By.CSS_SELECTOR, f'p.pending-short[data-board="{CIFAR}"]')
    table = driver.find_element(By.ID, f"table-{CIFAR}")
    assert short.location["y"] < table.location["y"] and "Zeta ResNet" in short.text
    assert re.match(r"\d+ registered models? pending", short.text)
    pending = driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.controls[data-board=\"' + arguments[0] + '\"] + .no-match + ul.pending-models li'),"
        " li => [li.textContent, li.dataset.training, li.dataset.family])",
        CIFAR,
    )
    wanted = [n for n, training, family in pending if training == "standard" and family == "ResNet"]
    assert "Zeta ResNet" in wanted
    rows = driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows,"
        " r => r.dataset.training + '/' + r.dataset.family)",
        f"table-{CIFAR}",
    )
    if "standard/ResNet" not in rows:  # the visitor's filter, while no standard ResNet is evaluated
        _reload(driver, f"{index}#board-{CIFAR}?training=standard&family=ResNet")
        message = driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{CIFAR}"] + .no-match')
        assert _shown(driver, CIFAR) == [] and message.is_displayed()
        assert f"Registered but not yet evaluated: {', '.join(wanted)}." in message.text
    # The filters with a search: only the pending models both match.
    _reload(driver, f"{index}#board-{CIFAR}?q=zeta&training=standard&family=ResNet")
    message = driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{CIFAR}"] + .no-match')
    assert _shown(driver, CIFAR) == [] and message.is_displayed()
    assert message.text.startswith("No evaluated model of this board matches these filters.")
    assert "Registered but not yet evaluated: Zeta ResNet." in message.text
    for other in ("training=pgd-at", "family=CNN"):  # another training or architecture: not named
        _reload(driver, f"{index}#board-{CIFAR}?q=zeta&{other}")
        message = driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{CIFAR}"] + .no-match')
        assert message.is_displayed() and "Zeta" not in message.text, other
    # A search: only the pending models whose words it finds.
    _reload(driver, f"{index}#board-{CIFAR}?q=zeta")
    message = driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{CIFAR}"] + .no-match')
    assert _shown(driver, CIFAR) == [] and "Registered but not yet evaluated: Zeta ResNet." in message.text
    # A search that finds neither an evaluated nor a pending model names none.
    _reload(driver, f"{index}#board-{CIFAR}?q=no+model+is+called+this")
    message = driver.find_element(By.CSS_SELECTOR, f'.controls[data-board="{CIFAR}"] + .no-match')
    assert message.is_displayed() and "Registered but not yet evaluated" not in message.text
    assert not driver.find_element(
        By.CSS_SELECTOR, f'.controls[data-board="{CIFAR}"] + .no-match .pending-match'
    ).is_displayed()
