"""Results files from strangers: every kind of hostile document is refused at the results door with one line
that names the file and the field, exit code 1, and nothing written: no run in the database, nothing in
``--out``, no file outside it.

The documents are the published results (``leaderboard/results/``) changed as a hostile contributor would
change them, each with its ``content_sha256`` recomputed (anyone can: it is a checksum, not a signature), so
that the door's own checks are what refuses them. A Hypothesis test then generates documents, valid and
mangled, and checks that import, export and ``site build`` never raise a Python exception and never write
outside ``--out``.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from invarbench.cli.app import app
from invarbench.site.build import build_site
from invarbench.store import Store, document_checks
from invarbench.store.document_checks import http_url
from invarbench.store.documents import content_digest

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
PUBLISHED = sorted(p for p in RESULTS.rglob("*.json") if ".artifacts" not in p.parent.name)
MARK = "zz-escape"  # in every path-like name the tests write, so that a file written outside is found
runner = CliRunner()


def published() -> dict:
    """The standard LeNet's published document, its artifacts embedded (a copy that travels alone)."""
    path = next(p for p in PUBLISHED if p.name.startswith("lenet-standard__"))
    doc = json.loads(path.read_text())
    import base64

    for a in doc["artifacts"]:
        a["data_base64"] = base64.b64encode((path.parent / a.pop("path")).read_bytes()).decode("ascii")
    return doc


ORIGINAL = published()


def fresh() -> dict:
    return json.loads(json.dumps(ORIGINAL))


def write(folder: Path, doc: object, *, digest: bool = True) -> Path:
    """``doc`` as ``folder/mnist5k/lenet-standard__standard-v4.json``, its digest recomputed."""
    if digest and isinstance(doc, dict):
        doc["content_sha256"] = content_digest(doc)
    path = folder / "mnist5k" / "lenet-standard__standard-v4.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def escaped(root: Path, allowed: Path) -> list[Path]:
    """Files or folders named with :data:`MARK` under ``root`` but not under ``allowed``."""
    return [p for p in root.rglob(f"*{MARK}*") if allowed.resolve() not in p.resolve().parents]


def card_with(**changes: object) -> str:
    """The published card text with top-level lines replaced (``key: value``)."""
    lines = ORIGINAL["model"]["card_yaml"].splitlines()
    for key, value in changes.items():
        lines = [f"{key}: {value}" if line.startswith(f"{key}:") else line for line in lines]
        if not any(line.startswith(f"{key}:") for line in lines):
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def set_card(doc: dict, card_yaml: str) -> None:
    doc["model"]["card_yaml"] = card_yaml
    doc["model"]["card_sha256"] = hashlib.sha256(card_yaml.encode()).hexdigest()


def metric(doc: dict, name: str) -> dict:
    return next(m for m in doc["metrics"] if m["name"] == name)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)

# (what a hostile contributor changes, the field the refusal names, the words that say why)
KINDS = {
    # 2. forged numbers
    "a proportion above 1": (
        lambda d: metric(d, "clean_accuracy").update(value=1.7),
        "run.metrics.clean_accuracy.value = 1.7",
        "is outside [0, 1] (share of examples)",
    ),
    "a negative robust accuracy": (
        lambda d: metric(d, "robust_accuracy_linf").update(value=-0.25),
        "run.metrics.robust_accuracy_linf.value = -0.25",
        "is outside [0, 1]",
    ),
    "a negative distance": (
        lambda d: metric(d, "path_width").update(value=-1.0),
        "run.metrics.path_width.value = -1",
        "is outside [0, ∞]",
    ),
    "an infinite proportion": (
        lambda d: metric(d, "clean_accuracy").update(value="Infinity"),
        "run.metrics.clean_accuracy.value = inf",
        "is not finite",
    ),
    "a negative example count": (
        lambda d: metric(d, "clean_accuracy").update(n=-1000),
        "run.metrics.clean_accuracy.n = -1000",
        "is negative",
    ),
    "more examples than stored": (
        lambda d: metric(d, "clean_accuracy").update(n=5000),
        "run.metrics.clean_accuracy.n = 5000",
        "the document stores 1000 per-example value(s) of clean",
    ),
    "a negative standard error": (
        lambda d: metric(d, "ece").update(stderr=-0.1),
        "run.metrics.ece.stderr = -0.1",
        "must be a number from 0",
    ),
    "an interval upside down": (
        lambda d: metric(d, "nspgd_closure").update(ci_low=0.9, ci_high=0.1),
        "run.metrics.nspgd_closure.ci_low = 0.9",
        "is above ci_high",
    ),
    "an unregistered metric": (
        lambda d: d["metrics"].append({**metric(d, "ece"), "name": "trust_me"}),
        "].name = 'trust_me'",
        "is not a metric this invarbench knows",
    ),
    # results that do not prove themselves
    "a better accuracy in range": (
        lambda d: metric(d, "clean_accuracy").update(value=0.99),
        "run.metrics.clean_accuracy.value = 0.99",
        "does not follow from the per-example values (they give 0.973)",
    ),
    "a narrower interval": (
        lambda d: metric(d, "median_min_l2_distance").update(ci_low=1.48),
        "run.metrics.median_min_l2_distance.ci_low = 1.48",
        "does not follow from the per-example values",
    ),
    "an edited per-example value": (
        lambda d: d["examples"][0]["values"]["correct"].__setitem__(0, not d["examples"][0]["values"]["correct"][0]),
        "run.metrics.clean_accuracy.value = 0.973",
        "does not follow from the per-example values",
    ),
    "a flag dropped": (
        lambda d: d["run"].__setitem__("flags", [*d["run"]["flags"], "gradient_attack_weaker_than_search"]),
        "run.flags has gradient_attack_weaker_than_search",
        "which the values do not give",
    ),
    "fewer examples than it claims": (
        lambda d: d["run"].__setitem__("examples_effective", 2000),
        "run.examples_effective = 2000",
        "stores 1000 clean example(s)",
    ),
    "per-example values of the wrong type": (
        lambda d: d["examples"][0]["values"].__setitem__("correct", ["yes"] * 250),
        "examples: the per-example values cannot be aggregated",
        "fix the file",
    ),
    # 1. names used as paths
    "a card id with ..": (
        lambda d: d["model"].__setitem__("card_id", f"mnist5k/../../{MARK}"),
        f"model.card_id = 'mnist5k/../../{MARK}'",
        "since it becomes part of a file path",
    ),
    "an absolute data set": (
        lambda d: d["model"].__setitem__("dataset", f"/tmp/{MARK}"),
        f"model.dataset = '/tmp/{MARK}'",
        "since it becomes part of a file path",
    ),
    "a suite name with /": (
        lambda d: d["run"].__setitem__("suite_name", f"../{MARK}"),
        f"run.suite_name = '../{MARK}'",
        "since it becomes part of a file path",
    ),
    "an artifact name with ..": (
        lambda d: d["artifacts"][0].__setitem__("name", f"../../{MARK}.png"),
        f"artifacts[0].name = '../../{MARK}.png'",
        "since it becomes part of a file path",
    ),
    "an artifact path outside": (
        lambda d: (d["artifacts"][0].pop("data_base64"), d["artifacts"][0].__setitem__("path", "/etc/passwd")),
        "artifacts[0].path = '/etc/passwd'",
        "must be '<folder>.artifacts/",
    ),
    "a huge artifact": (
        lambda d: d["artifacts"][0].__setitem__("size_bytes", 10**12),
        "artifacts[0].size_bytes = 1,000,000,000,000",
        "the most an artifact may be",
    ),
    "a page-long device name": (
        lambda d: d["run"].__setitem__("device", "cpu " * 50_000),
        "run.device is 200,000 characters long",
        "a text field is at most 2,000",
    ),
    # 3. the card inside
    "card_yaml a list": (
        lambda d: set_card(d, "- id\n- name\n"),
        "model.card_yaml",
        "expected a mapping of fields, got list",
    ),
    "card_yaml not YAML": (
        lambda d: set_card(d, "id: [mnist5k\n"),
        "model.card_yaml",
        "invalid YAML",
    ),
    "card_yaml an alias bomb": (
        lambda d: set_card(d, BOMB),
        "model.card_yaml",
        "anchors and aliases",
    ),
    "card_yaml with a duplicate key": (
        lambda d: set_card(d, ORIGINAL["model"]["card_yaml"] + "license: Evil\n"),
        "model.card_yaml",
        "the key 'license' appears twice",
    ),
    "a javascript: paper link": (
        lambda d: set_card(d, card_with(paper="{title: Click me, url: 'javascript:alert(1)'}")),
        "model.card_yaml",
        "paper.url: url must start with http:// or https://",
    ),
    "a card of another model": (
        lambda d: set_card(d, card_with(name="Not this model")),
        "model.name = 'LeNet (standard training)'",
        "is not the card's 'Not this model'",
    ),
    "card_sha256 of another text": (
        lambda d: d["model"].__setitem__("card_sha256", "0" * 64),
        "model.card_sha256",
        "is not the sha256 of model.card_yaml",
    ),
    "a NaN in a card field": (
        lambda d: set_card(d, card_with(num_classes=".nan")),
        "model.card_yaml",
        "num_classes",
    ),
}


def _refused(result, file: Path, field: str, why: str) -> str:  # a click Result
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(file) in lines[0] and field in lines[0] and why in lines[0], lines[0]
    assert len(lines[0]) < 600  # one line, never a page
    return lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_results_file_is_refused_in_one_line_and_nothing_is_written(kind, tmp_path):
    change, field, why = KINDS[kind]
    doc = fresh()
    change(doc)
    folder = tmp_path / "pr" / "results"
    file = write(folder, doc)
    db = tmp_path / "pr" / "store.db"
    url = f"sqlite:///{db}"
    Store(url).close()
    before = db.read_bytes()

    _refused(runner.invoke(app, ["results", "import", str(file), "--db", url]), file, field, why)
    assert Store(url).list_runs() == [] and db.read_bytes() == before  # the database is unchanged

    out = tmp_path / "pr" / "site"
    site = runner.invoke(app, ["site", "build", "--results", str(folder), "--out", str(out)])
    _refused(site, file, field, why)
    assert not out.exists()  # nothing written
    assert escaped(tmp_path.parent, tmp_path / "nowhere") == []


def test_a_duplicate_key_is_refused_where_a_plain_parser_keeps_the_last(tmp_path):
    good = json.dumps(fresh())
    honest = '"name": "clean_accuracy", "value": 0.973, '
    assert honest in good
    text_ = good.replace(honest, honest + '"value": 1.0, ', 1)  # a reviewer reads 0.973
    assert json.loads(text_)["metrics"][0]["value"] == 1.0  # json.loads: the last value wins, silently
    file = write(tmp_path, text_)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    line = _refused(runner.invoke(app, ["results", "import", str(file), "--db", url]), file, "'value'", "twice")
    assert line == (
        f"Error: {file}: the key 'value' appears twice in one object (a reader would see the first, the import the "
        "last): keep one; fix the file or re-export it with 'invarbench results export'"
    )
    assert Store(url).list_runs() == []


def test_a_file_over_the_size_cap_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    file = write(tmp_path, fresh())
    monkeypatch.setattr(document_checks, "MAX_RESULTS_FILE_BYTES", 100_000)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    line = _refused(runner.invoke(app, ["results", "import", str(file), "--db", url]), file, "bytes", "at most")
    assert line.startswith(f"Error: {file} is {file.stat().st_size:,} bytes; a results file is at most 100,000 bytes")


def test_the_published_files_pass_the_door_and_import(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = runner.invoke(app, ["results", "import", str(RESULTS), "--db", url])
    assert result.exit_code == 0, result.output
    assert len(Store(url).list_runs()) == len(PUBLISHED)


def test_a_file_that_cannot_prove_itself_imports_with_a_warning_and_is_never_published(tmp_path):
    """A file of an older suite version that recorded no suite settings (format version 1): its metrics cannot be
    recomputed. ``results import`` (a database of one's own) takes it and says so; ``site build --results`` (what
    the public sees) refuses it."""
    old = Path(__file__).resolve().parent / "data" / "lenet-standard__standard-v2.json"
    folder = tmp_path / "results" / "mnist5k"
    folder.mkdir(parents=True)
    shutil.copy(old, folder / old.name)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = runner.invoke(app, ["results", "import", str(folder / old.name), "--db", url])
    assert result.exit_code == 0, result.output
    reason = (
        f"{folder / old.name}: run.suite_settings is not recorded and this invarbench has no standard v2 for mnist5k, "
        "so its metrics cannot be recomputed from its per-example values (a file of an older suite version): "
        "evaluate the model with the current suite and export that run"
    )
    assert result.stderr == f"Warning: {reason}. Imported as it is; 'site build --results' refuses such a file.\n"
    assert len(Store(url).list_runs()) == 1
    site = runner.invoke(app, ["site", "build", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "s")])
    assert site.exit_code == 1 and site.stderr == f"Error: {reason}\n"
    assert not (tmp_path / "s").exists()


def _tampered_database(tmp_path: Path, sql: str) -> str:
    """A database holding a published run, then changed behind the door (as an old or foreign database may be)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert runner.invoke(app, ["results", "import", str(write(tmp_path / "in", fresh())), "--db", url]).exit_code == 0
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql))
    engine.dispose()
    return url


@pytest.mark.parametrize(
    "sql, field",
    [
        (f"UPDATE models SET card_id = 'mnist5k/../../{MARK}'", "model.card_id"),
        (f"UPDATE runs SET suite_name = '../../{MARK}'", "suite_name"),
        (f"UPDATE runs SET dataset = '../{MARK}'", "dataset"),
        (f"UPDATE artifacts SET name = '../../{MARK}.png' WHERE name = 'nspgd-strip-00050.png'", "artifact name"),
    ],
)
def test_export_and_site_build_never_write_outside_out(tmp_path, sql, field):
    url = _tampered_database(tmp_path, sql)
    deep = tmp_path / "a" / "b" / "c"
    out = deep / "results"
    result = runner.invoke(app, ["results", "export", "--out", str(out), "--db", url])
    assert result.exit_code == 1, result.output
    assert field in result.stderr and "part of a file path" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not out.exists()
    site = runner.invoke(app, ["site", "build", "--db", url, "--out", str(deep / "site")])
    if field == "artifact name":  # not an image strip's name: the site shows no such file, and writes none
        assert site.exit_code == 0, site.output
        assert (deep / "site" / "index.html").is_file()
    else:
        assert site.exit_code == 1 and "becomes part of a file path" in site.stderr, site.output
        assert not (deep / "site").exists()
    assert escaped(tmp_path, deep / "site") == []


def test_only_http_urls_become_links():
    for ok in ("https://arxiv.org/abs/1706.06083", "http://example.org/a?b=c#d", "HTTPS://EXAMPLE.ORG"):
        assert http_url(ok) == ok
    for bad in (
        "javascript:alert(1)",
        " javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example",
        "vbscript:x",
        "https://",
        "https://a b",
        "https://a\nb",
        "file:///etc/passwd",
        None,
        42,
    ):
        assert http_url(bad) is None, bad


def test_a_stored_card_with_a_javascript_link_is_never_rendered_as_one(tmp_path):
    """A database filled behind the door (an old one): the site reads the stored card with the card loader, and
    a link that is not http(s) is never an href."""
    url = _tampered_database(
        tmp_path,
        "UPDATE models SET card_yaml = card_yaml || "
        "'paper: {title: Read me, url: \"javascript:alert(1)\"}' || char(10)",
    )
    store = Store(url)
    try:
        build_site(store, tmp_path / "site")
    finally:
        store.close()
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) == 2
    for page in pages:
        html = page.read_text()
        assert "javascript:" not in html
        for href in [h for h in html.split('href="')[1:]]:
            target = href.split('"')[0]
            assert target.startswith(("https://", "../", "#", "boards/", "models/")) or target.endswith(".json"), target


# --- generated documents -----------------------------------------------------------------------------------
PATHS = [
    ("model", "card_id"),
    ("model", "dataset"),
    ("model", "name"),
    ("model", "card_yaml"),
    ("model", "hub_repo"),
    ("run", "suite_name"),
    ("run", "suite_version"),
    ("run", "flags"),
    ("run", "examples_effective"),
    ("run", "suite_settings"),
    ("metrics", 0, "value"),
    ("metrics", 1, "n"),
    ("metrics", 4, "ci_low"),
    ("metrics", 7, "name"),
    ("metrics",),
    ("examples", 0, "values", "correct"),
    ("examples", 0, "batch_start"),
    ("examples", 4, "measurement"),
    ("artifacts", 0, "name"),
    ("artifacts", 0, "data_base64"),
    ("artifacts", 1, "size_bytes"),
]
NAMES = st.sampled_from(
    [
        f"../{MARK}",
        f"../../../{MARK}",
        f"/tmp/{MARK}",
        f"mnist5k/../{MARK}",
        f"{MARK}/x",
        f".{MARK}",
        f"{MARK}\\..\\x",
        f"{MARK}\x00",
        "",
        ".",
        "..",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", 1.7, -0.5, 1e308, 5e-324]),
    st.text(max_size=20),
    st.just("x" * 200_000),
    NAMES,
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
    st.sampled_from(["- a\n- b\n", "a: [\n", BOMB, "id: &x mnist5k/x\nname: *x\n"]),
)


def _set(doc: dict, path: tuple, value: object) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@st.composite
def documents(draw) -> str:
    """A results document as text: the published one with one to three fields replaced by hostile values
    (its digest recomputed where the values allow), sometimes a key doubled too. (The published document
    itself, valid, is the explicit example.)"""
    doc = fresh()
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True)):
        _set(doc, path, draw(VALUES))
    doc["content_sha256"] = content_digest_or_none(doc) or "0" * 64
    textual = json.dumps(doc, allow_nan=False) if _finite(doc) else json.dumps(fresh())
    if draw(st.booleans()) and draw(st.booleans()):
        textual = textual.replace('"format": ', '"format": "x", "format": ', 1)
    return textual


def _finite(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def content_digest_or_none(doc: dict) -> str | None:
    try:
        return content_digest(doc)
    except (ValueError, TypeError):
        return None


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(documents())
@example(json.dumps(ORIGINAL))
def test_generated_documents_never_raise_and_never_write_outside_out(tmp_path, text_):
    work = tmp_path / f"case-{hashlib.sha256(text_.encode()).hexdigest()[:12]}"
    shutil.rmtree(work, ignore_errors=True)
    deep = work / "a" / "b" / "c"
    write(deep / "results", text_, digest=False)
    url = f"sqlite:///{work / 'store.db'}"
    outcomes = [
        runner.invoke(app, ["results", "import", str(deep / "results"), "--db", url]),
        runner.invoke(app, ["results", "export", "--out", str(deep / "export"), "--db", url]),
        runner.invoke(app, ["site", "build", "--results", str(deep / "results"), "--out", str(deep / "site")]),
    ]
    for result in outcomes:
        assert result.exit_code in (0, 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        if result.exit_code == 1:
            assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 2000, result.stderr
    assert escaped(work, deep) == [] and escaped(tmp_path.parent, tmp_path) == []
    for folder in ("export", "site"):
        for p in (deep / folder).rglob("*"):
            assert deep / folder in p.resolve().parents
    imported = Store(url).list_runs()
    assert (outcomes[0].exit_code == 0) == bool(imported)
    if imported:  # what passed the door is a document whose numbers follow from its values
        assert all(
            math.isnan(m.value) or 0 <= m.value <= 1
            for m in Store(url).get_run(imported[0].id).metrics
            if m.name == "clean_accuracy"
        )
