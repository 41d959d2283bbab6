"""``invarbench results``: show, compare, export and import, with exact exit codes and messages,
and the JSON interchange format: an export imported into a fresh database reproduces every
number, on SQLite and (when a server is reachable) PostgreSQL; the leaderboard's files are
stable and byte-for-byte deterministic."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from store_helpers import (  # fixtures
    SHA_A,
    SHA_B,
    TOY_SETTINGS,
    add_model,
    batch_values,
    db_url,
    fabricated,
    fresh_database,
    metric,
    provenance,
    settings_fields,
    sqlite_url,
)
from typer.testing import CliRunner

from invarbench.cli import app
from invarbench.store import PROVENANCE_FIELDS, Store
from invarbench.store.codec import encode_floats
from invarbench.store.csv_view import CSV_COLUMNS
from invarbench.store.documents import FORMAT_VERSION, content_digest, dumps, parse_document

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n not really an image \x00\xff"
# Numbers that only survive exactly written: 17 significant digits, subnormal, signed zero, NaN, ±inf.
TRICKY = [0.1 + 0.2, 1 / 3, 5e-324, -0.0, 1e308, float("nan"), float("inf"), float("-inf"), 2**53 + 1]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """Rich tables as wide as they need: no cell is cut or wrapped. (Through the environment, which the
    console reads at every print: setting its width would pin it for the tests that run after these.)"""
    monkeypatch.setenv("COLUMNS", "400")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def backend(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def populate(store: Store) -> dict[str, int]:
    """Two models, two suite versions, a superseded, a failed and a running run; returns their ids."""
    model = add_model(store)
    store_hub = store.upsert_model(
        card_id="toy/other",
        name="Other \u2013 \u00fcnicode",
        dataset="toy",
        card_yaml="id: toy/other\n# \u00e9\n",
        card_sha256="c" * 64,
        file_sha256="d" * 64,
        hub_repo="org/other",
        hub_revision="e" * 40,
        training_method="pgd_at",
    )
    ids = {}
    ids["old"] = _finished(store, model, provenance(), 0.25)
    # the main run records a model dtype and suite settings (a format version 3 document), the other run a model
    # dtype (version 2), the v2 run none of them (version 1)
    ids["main"] = _finished(
        store,
        model,
        provenance(seed=7, model_dtype="float32", **settings_fields()),
        2 / 3,
        examples=True,
        artifact=True,
    )
    ids["v2"] = _finished(store, model, provenance(suite_version=2), 0.5)
    ids["other"] = _finished(
        store, store_hub, provenance(git_commit="f" * 40, model_dtype="float16"), 1 / 7, examples=True
    )
    ids["failed"] = store.start_run(model, provenance(seed=9))
    store.add_examples(ids["failed"], 0, batch_values(0))
    store.fail_run(ids["failed"], "RuntimeError: boom")
    ids["running"] = store.start_run(store_hub, provenance(seed=11))
    return ids


def _finished(store: Store, model_id: int, prov, accuracy: float, *, examples=False, artifact=False) -> int:
    run_id = store.start_run(model_id, prov)
    if examples:
        for start in (0, 2, 4):
            values = batch_values(start)
            values["tricky"] = {"x": TRICKY, "y": [True, None, 3, "label"]}
            store.add_examples(run_id, start, values, duration_s=0.1 * (start + 1), peak_memory_bytes=2**40 + start)
    if artifact:
        store.add_artifact(run_id, "strip.png", PNG)
        store.add_artifact(run_id, "summary.json", b'{"not": "a results file"}')
    metrics = [
        metric("clean_accuracy", accuracy, 0.19245008972987526, (0.20000000000000004, 0.9032)),
        metric("robust_accuracy_linf", 0.1 + 0.2, 0.0, (0.0, 1.0)),
        metric("median_min_l2_distance", float("inf"), None, None),
        metric("ece", float("nan"), float("nan"), None, n=0),
    ]
    store.finish_run(
        run_id, metrics, ["few_examples", "gradient_masking_suspected"], duration_s=1 / 3, peak_memory_bytes=123456789
    )
    return run_id


def numbers(store: Store, run_id: int) -> dict:
    """Everything a run is, as exact text: provenance, metrics, per-example values, artifacts."""
    run = store.get_run(run_id)
    model = run.model
    fields = (
        "uid",
        "status",
        "error",
        "flags",
        "duration_s",
        "peak_memory_bytes",
        "attempts",
        *(f.name for f in PROVENANCE_FIELDS),
    )
    return {
        "model": [
            getattr(model, f)
            for f in (
                "card_id",
                "name",
                "dataset",
                "card_yaml",
                "card_sha256",
                "file_sha256",
                "hub_repo",
                "hub_revision",
                "training_method",
            )
        ],
        "run": [repr(getattr(run, f)) for f in fields],
        "times": [_utc_text(run.started_at), _utc_text(run.finished_at)],
        "metrics": [(m.name, repr(m.value), repr(m.stderr), repr(m.ci_low), repr(m.ci_high), m.n) for m in run.metrics],
        "examples": json.dumps(encode_floats(store.stored_batches(run_id)), sort_keys=True),
        "artifacts": [
            (a.name, a.media_type, a.sha256, a.size_bytes, a.data, _utc_text(a.created_at)) for a in run.artifacts
        ],
    }


def _utc_text(ts: datetime | None) -> str | None:
    """A stored time as UTC text (SQLite gives naive UTC datetimes back, PostgreSQL aware ones)."""
    if ts is None:
        return None
    return (ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)).isoformat()


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the round trip ----------------------------------------------------------------------------
def test_export_then_import_into_a_fresh_database_reproduces_every_number(db_url, tmp_path, fabricated):
    source = Store(db_url)
    ids = populate(source)
    out = tmp_path / "results"
    result = invoke("results", "export", "--format", "json", "--out", str(out), "--db", db_url)
    assert result.exit_code == 0, result.output

    with fresh_database(backend(db_url), tmp_path / "target") as target_url:
        imported = invoke("results", "import", str(out), "--db", target_url)
        assert imported.exit_code == 0, imported.output
        assert imported.output.splitlines()[-1] == "3 run(s) imported, 0 already present."
        target = Store(target_url)
        by_uid = {r.uid: r.id for r in target.list_runs()}
        for name in ("main", "v2", "other"):
            original = numbers(source, ids[name])
            copy = numbers(target, by_uid[original["run"][0].strip("'")])
            assert copy == original, name
        # the per-example values come back as the very floats: NaN, ±inf, -0.0, subnormals included
        main = target.stored_batches(by_uid[source.get_run(ids["main"]).uid])
        back = main[2]["tricky"]["x"]
        assert [math.copysign(1, v) for v in back[3:4]] == [-1.0] and back[2] == 5e-324 and back[0] == 0.1 + 0.2
        assert math.isnan(back[5]) and back[6:8] == [math.inf, -math.inf] and back[8] == 2**53 + 1
        assert type(back[8]) is int and main[2]["tricky"]["y"] == [True, None, 3, "label"]

        again = tmp_path / "again"
        assert invoke("results", "export", "--out", str(again), "--db", target_url).exit_code == 0
        assert tree(again) == tree(out)  # the rebuilt database exports the very same bytes

        twice = invoke("results", "import", str(out), "--db", target_url)
        assert twice.exit_code == 0, twice.output
        assert twice.output.splitlines()[-1] == "0 run(s) imported, 3 already present."
        assert len(target.list_runs()) == 3


def test_the_standard_output_export_round_trips_too(db_url, tmp_path, fabricated):
    source = Store(db_url)
    ids = populate(source)
    result = invoke("results", "export", "--db", db_url)
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert [d["run"]["uid"] for d in documents] == [source.get_run(ids[n]).uid for n in ("main", "v2", "other")]
    assert [a["name"] for a in documents[0]["artifacts"]] == ["strip.png", "summary.json"]
    assert "data_base64" in documents[0]["artifacts"][0] and "path" not in documents[0]["artifacts"][0]
    file = tmp_path / "all.json"
    file.write_text(result.stdout)
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    imported = invoke("results", "import", str(file), "--db", target_url)
    assert imported.exit_code == 0, imported.output
    assert imported.output.splitlines()[0] == f"imported as run 1: {file} (document 1)"
    target = Store(target_url)
    assert numbers(target, 1) == numbers(source, ids["main"])
    # the embedded and the folder forms of a document have the same content digest
    out = tmp_path / "tree"
    assert invoke("results", "export", "--out", str(out), "--db", db_url).exit_code == 0
    on_disk = json.loads((out / "toy" / "model__quick-v1.json").read_text())
    assert on_disk["content_sha256"] == documents[0]["content_sha256"] == content_digest(on_disk)


# --- the leaderboard layout ----------------------------------------------------------------------
def test_the_leaderboard_layout_is_one_stable_file_per_model_and_suite_version(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    ids = populate(store)
    out = tmp_path / "leaderboard" / "results"
    result = invoke("results", "export", "--format", "json", "--out", str(out), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert sorted(tree(out)) == [
        "toy/model__quick-v1.artifacts/strip.png",
        "toy/model__quick-v1.artifacts/summary.json",
        "toy/model__quick-v1.json",
        "toy/model__quick-v2.json",
        "toy/other__quick-v1.json",
    ]
    assert result.stderr.splitlines() == [
        f"Wrote {out / 'toy/model__quick-v1.json'}",
        f"Wrote {out / 'toy/model__quick-v2.json'}",
        f"Wrote {out / 'toy/other__quick-v1.json'}",
        f"Exported 3 run(s) to {out}",
        "Left out 3 run(s): 1 superseded by a newer full run, 2 not finished; export one with --run ID",
    ]
    text = (out / "toy" / "model__quick-v1.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    # the newest finished run of each (model, suite, version): not the superseded, failed or running ones
    assert doc["run"]["uid"] == store.get_run(ids["main"]).uid and doc["run"]["seed"] == 7
    assert list(doc) == [
        "format",
        "format_version",
        "content_sha256",
        "model",
        "run",
        "metrics",
        "examples",
        "artifacts",
    ]
    # the toy runs record suite settings but no data digest: format version 3, the newest but one
    assert (doc["format"], doc["format_version"]) == ("invarbench-results", 3) and FORMAT_VERSION == 4
    assert (doc["run"]["model_dtype"], doc["run"]["data_source"], doc["run"]["suite_num_examples"]) == (
        "float32",
        None,
        None,
    )
    # the version 3 fields come last, the settings exact; a run that recorded none of them is written as version 2,
    # one that recorded none of the version 2 fields either as version 1, without them
    assert list(doc["run"])[-5:] == [
        "suite_num_examples",
        "data_source",
        "model_dtype",
        "suite_settings_hash",
        "suite_settings",
    ]
    assert doc["run"]["suite_settings"] == encode_floats(TOY_SETTINGS)
    assert doc["run"]["suite_settings_hash"] == settings_fields()["suite_settings_hash"]
    other_doc = json.loads((out / "toy" / "other__quick-v1.json").read_text(encoding="utf-8"))
    assert other_doc["format_version"] == 2 and list(other_doc["run"])[-1] == "model_dtype"
    v2_doc = json.loads((out / "toy" / "model__quick-v2.json").read_text(encoding="utf-8"))
    assert v2_doc["format_version"] == 1 and "model_dtype" not in v2_doc["run"]
    assert doc["artifacts"][0]["path"] == "model__quick-v1.artifacts/strip.png"
    assert (out / "toy" / "model__quick-v1.artifacts" / "strip.png").read_bytes() == PNG
    # reviewable text: indented, one line per list of plain values, exact numbers, non-finite as strings
    assert text == dumps(doc) and text.endswith("}\n") and "\r" not in text
    assert '"value": 0.6666666666666666,' in text and '"value": "Infinity",' in text and '"value": "NaN",' in text
    assert (
        '"x": [0.30000000000000004, 0.3333333333333333, 5e-324, -0.0, 1e+308, "NaN", "Infinity", "-Infinity", '
        "9007199254740993]" in text
    )
    assert '"flags": ["few_examples", "gradient_masking_suspected"],' in text
    assert '"eps": 0.30000000000000004,' in text and '"radii": [2.5, 5e-324],' in text
    assert "Other \u2013 \u00fcnicode" in (out / "toy" / "other__quick-v1.json").read_text(encoding="utf-8")

    before = tree(out)
    assert invoke("results", "export", "--out", str(out), "--db", sqlite_url).exit_code == 0
    assert tree(out) == before  # exporting again changes no byte

    # a newer finished run of the same model and suite version replaces that one file, under the same name
    newer = _finished(store, add_model(store), provenance(seed=8), 0.75)
    assert invoke("results", "export", "--out", str(out), "--db", sqlite_url).exit_code == 0
    after = tree(out)
    assert sorted(after) == sorted(before)
    assert json.loads(after["toy/model__quick-v1.json"])["run"]["uid"] == store.get_run(newer).uid
    assert after["toy/other__quick-v1.json"] == before["toy/other__quick-v1.json"]


def test_export_filters_by_dataset_and_model(sqlite_url, tmp_path):
    populate(Store(sqlite_url))
    out = tmp_path / "only-other"
    result = invoke("results", "export", "--out", str(out), "--model", "toy/other", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert sorted(tree(out)) == ["toy/other__quick-v1.json"]
    none = invoke("results", "export", "--out", str(tmp_path / "none"), "--dataset", "cifar10", "--db", sqlite_url)
    assert none.exit_code == 0 and none.stderr.strip() == f"Exported 0 run(s) to {tmp_path / 'none'}"


def test_csv_export_is_one_row_per_run_and_metric_with_exact_numbers(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    ids = populate(store)
    out = tmp_path / "csv" / "results.csv"
    result = invoke("results", "export", "--format", "csv", "--out", str(out), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"Wrote {out}"
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == 4 * 4  # four finished runs with four metrics each; the failed/running runs have none
    main = [r for r in rows if r["run_id"] == str(ids["main"])]
    assert [(r["metric"], r["value"], r["stderr"], r["ci_low"]) for r in main] == [
        ("clean_accuracy", "0.6666666666666666", "0.19245008972987526", "0.20000000000000004"),
        ("robust_accuracy_linf", "0.30000000000000004", "0.0", "0.0"),
        ("median_min_l2_distance", "inf", "", ""),
        ("ece", "nan", "", ""),
    ]
    assert invoke("results", "export", "--format", "csv", "--db", sqlite_url).stdout == out.read_text()


# --- show, list and compare ---------------------------------------------------------------------
def test_show_prints_provenance_metrics_stored_values_and_artifacts(sqlite_url):
    store = Store(sqlite_url)
    ids = populate(store)
    run = store.get_run(ids["main"])
    result = invoke("results", "show", str(ids["main"]), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        f"run {ids['main']} · toy/model · quick v1",
        SHA_A,
        SHA_B,
        run.uid,
        "few_examples, gradient_masking_suspected",
        "1048576.0 MiB",
        f"artifact strip.png (image/png, {len(PNG)} bytes, sha256 ",
    ):
        assert expected in out, expected
    # one row per provenance field, in the provenance type's order, NULLs in words
    for label, text in (
        ("seed", "7"),
        ("batch size", "2"),
        ("examples requested", "6"),
        ("examples evaluated", "6"),
        ("git commit", "unknown"),
        ("examples in the suite", "not recorded"),
        ("data", "the toy test split"),
        ("model dtype", "float32"),
        ("suite settings hash", run.suite_settings_hash),
    ):
        assert re.search(rf"^│ {label}\s+│ {re.escape(text)}\s+│$", out, flags=re.M), label
    assert "suite settings " not in out.replace("suite settings hash", "")  # the settings: in the export only
    assert re.search(r"clean_accuracy\s+│\s+0\.6667\s+│\s+0\.1925\s+│\s+\[0\.2000, 0\.9032\]\s+│\s+6", out)
    assert re.search(r"ece\s+│\s+NaN\s+│\s+–\s+│\s+–\s+│\s+0", out)
    assert re.search(r"tricky\s+│\s+3\s+│\s+27\s+│\s+x, y", out)

    failed = invoke("results", "show", str(ids["failed"]), "--db", sqlite_url)
    assert failed.exit_code == 0 and "failed (RuntimeError: boom)" in failed.stdout


def test_list_filters_by_dataset_and_model(sqlite_url):
    ids = populate(Store(sqlite_url))
    every = invoke("results", "list", "--db", sqlite_url)
    assert every.exit_code == 0 and "6 run(s)" in every.stdout
    other = invoke("results", "list", "--model", "toy/other", "--db", sqlite_url)
    assert other.exit_code == 0 and "2 run(s)" in other.stdout
    assert re.search(rf"^\s+{ids['other']}\s+toy/other\s", other.stdout, re.M) and "toy/model" not in other.stdout
    nothing = invoke("results", "list", "--dataset", "cifar10", "--db", sqlite_url)
    assert nothing.exit_code == 0 and nothing.stdout.strip() == "No runs stored yet. Run 'invarbench eval MODEL' first."


def test_compare_shows_differences_and_where_provenance_differs(sqlite_url):
    ids = populate(Store(sqlite_url))
    result = invoke("results", "compare", str(ids["old"]), str(ids["main"]), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"clean_accuracy\s+│\s+0\.2500\s+│.*│\s+0\.6667\s+│.*│\s+0\.4167\s+│\s+yes", out)
    assert re.search(r"median_min_l2_distance\s+│\s+inf\s+│\s+–\s+│\s+inf\s+│\s+–\s+│\s+NaN\s+│\s+–", out)
    assert re.search(r"provenance that\s+differs", out) and re.search(r"│ seed\s+│ 0\s+│ 7\s+│", out)
    assert re.search(r"│ model dtype\s+│ not recorded\s+│ float32\s+│", out)
    assert re.search(rf"│ suite settings hash\s+│ not recorded\s+│ {settings_fields()['suite_settings_hash']}\s+│", out)
    assert len(re.findall(r"^│ [a-z]", out.split("provenance that")[1], flags=re.M)) == 3  # only these three differ
    assert out.endswith(
        f"Suite settings differ: run {ids['old']} and run {ids['main']} were measured with different "
        f"suite settings (their hashes differ).\nRun {ids['old']} recorded no suite settings.\n"
    )
    same = invoke("results", "compare", str(ids["main"]), str(ids["main"]), "--db", sqlite_url)
    assert same.exit_code == 0
    assert _flat(same.stdout).endswith(
        "Same model snapshot, status and provenance (suite, suite version, dataset, seed, batch size, examples "
        "requested, examples evaluated, device, invarbench, git commit, torch, examples in the suite, data, model "
        "dtype, suite settings hash, data digest)."
    )


# --- errors: one line on stderr, exit code 1, nothing half done ---------------------------------
def _flat(text: str) -> str:
    """Click's usage errors as one line: without rich's box and the line breaks it wraps them at."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    return result.stderr.strip()


@pytest.mark.parametrize("command", [("show", "42"), ("compare", "1", "42"), ("compare", "42", "1")])
def test_an_unknown_run_id_is_one_clear_error(sqlite_url, command):
    populate(Store(sqlite_url))
    assert _error(invoke("results", *command, "--db", sqlite_url)) == (
        f"Error: run 42 not found in {sqlite_url}: see 'invarbench results list'"
    )


def test_a_run_id_must_be_a_number(sqlite_url):
    result = invoke("results", "show", "abc", "--db", sqlite_url)
    assert result.exit_code == 2
    assert "Invalid value for 'run_id': Input should be a valid integer" in _flat(result.output)


@pytest.fixture
def exported(sqlite_url, tmp_path) -> Path:
    """One exported results file (the main run, with its artifacts beside it)."""
    populate(Store(sqlite_url))
    out = tmp_path / "results"
    assert invoke("results", "export", "--out", str(out), "--model", "toy/model", "--db", sqlite_url).exit_code == 0
    return out / "toy" / "model__quick-v1.json"


@pytest.fixture
def target(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'target.db'}"


def _nothing_imported(url: str) -> None:
    assert Store(url).list_runs() == []


def test_import_refuses_a_missing_path_and_an_empty_folder(target, tmp_path):
    assert _error(invoke("results", "import", str(tmp_path / "nope.json"), "--db", target)) == (
        f"Error: {tmp_path / 'nope.json'} does not exist"
    )
    (tmp_path / "empty").mkdir()
    assert _error(invoke("results", "import", str(tmp_path / "empty"), "--db", target)) == (
        f"Error: no .json results files under {tmp_path / 'empty'}"
    )


def test_import_refuses_a_file_that_is_not_json(target, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "invarbench-results",')
    assert _error(invoke("results", "import", str(bad), "--db", target)).startswith(
        f"Error: {bad} is not valid JSON: Expecting property name enclosed in double quotes"
    )
    _nothing_imported(target)


def test_import_refuses_bare_nan_which_strict_json_has_not(exported, target):
    text = exported.read_text().replace('"value": "NaN"', '"value": NaN', 1)
    assert '"value": NaN' in text
    exported.write_text(text)
    assert _error(invoke("results", "import", str(exported), "--db", target)) == (
        f"Error: {exported} is not valid JSON: NaN is not JSON (write non-finite numbers as the strings "
        '"NaN", "Infinity", "-Infinity")'
    )


def test_import_refuses_json_that_is_not_a_results_file(target, tmp_path):
    other = tmp_path / "package.json"
    other.write_text('{"name": "x"}')
    assert _error(invoke("results", "import", str(other), "--db", target)) == (
        f'Error: {other} is not an invarbench results file (no "format": "invarbench-results")'
    )


def test_import_refuses_a_newer_format_version(exported, target):
    doc = json.loads(exported.read_text())
    doc["format_version"] = FORMAT_VERSION + 1
    doc["new_field_of_the_future"] = 1
    exported.write_text(json.dumps(doc))
    assert _error(invoke("results", "import", str(exported), "--db", target)) == (
        f"Error: {exported} has format_version {FORMAT_VERSION + 1}; this invarbench reads up to "
        f"{FORMAT_VERSION}: upgrade invarbench"
    )
    doc["format_version"] = "1"
    exported.write_text(json.dumps(doc))
    assert _error(invoke("results", "import", str(exported), "--db", target)) == (
        f"Error: {exported}: field 'format_version' must be a whole number from 1, got '1'"
    )
    _nothing_imported(target)


@pytest.mark.parametrize(
    "old, new",
    [
        ('"value": 0.6666666666666666,', '"value": 0.6666666666666667,'),  # the last digit of a metric
        ('"x": [0.30000000000000004,', '"x": [0.3,'),  # one per-example value
        ('"seed": 7,', '"seed": 8,'),  # provenance
        ('"model_dtype": "float32"', '"model_dtype": "float16"'),
        ('"steps": 10,', '"steps": 11,'),  # a suite setting
        ('"n": 6\n', '"n": 60\n'),
    ],
)
def test_import_refuses_a_tampered_number(exported, target, old, new):
    text = exported.read_text()
    assert old in text
    exported.write_text(text.replace(old, new, 1))
    assert _error(invoke("results", "import", str(exported), "--db", target)) == (
        f"Error: {exported}: its content does not match its content_sha256: it was changed after it was exported. "
        "Results files are written by 'invarbench results export', never edited by hand"
    )
    _nothing_imported(target)


def test_reformatting_a_results_file_is_not_tampering(exported, target, fabricated):
    exported.write_text(json.dumps(json.loads(exported.read_text()), indent=None).replace(", ", ",\r\n "))
    result = invoke("results", "import", str(exported), "--db", target)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "path, value, message",
    [
        (
            ("metrics", 0, "value"),
            "high",
            "field 'metrics.0.value': Value error, value must be a number, null, "
            "'NaN', 'Infinity' or '-Infinity', got 'high'",
        ),
        (("metrics", 0, "stderr"), True, "field 'metrics.0.stderr': Value error, stderr must be a number, got True"),
        (("run", "status"), "done", "field 'run.status': Value error, must be one of running, finished, failed"),
        (("model", "card_sha256"), "xyz", "field 'model.card_sha256': String should match pattern '^[0-9a-f]{64}$'"),
        (("run", "surprise"), 1, "field 'run.surprise': Extra inputs are not permitted"),
    ],
)
def test_import_names_the_file_and_the_field_of_a_malformed_value(exported, target, path, value, message):
    doc = json.loads(exported.read_text())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    doc["content_sha256"] = content_digest(doc)  # well-formed apart from the value
    exported.write_text(json.dumps(doc))
    assert _error(invoke("results", "import", str(exported), "--db", target)) == f"Error: {exported}: {message}"
    _nothing_imported(target)


def test_import_refuses_a_missing_or_altered_artifact(exported, target, fabricated):
    artifact = exported.parent / "model__quick-v1.artifacts" / "strip.png"
    artifact.write_bytes(PNG + b"!")
    assert _error(invoke("results", "import", str(exported), "--db", target)) == (
        f"Error: {exported}: artifact 'strip.png' does not match its sha256 and size"
    )
    artifact.unlink()
    assert _error(invoke("results", "import", str(exported), "--db", target)) == (
        f"Error: {exported}: artifact file {artifact} is missing"
    )
    _nothing_imported(target)


def test_a_bad_file_in_a_folder_imports_nothing(exported, target, fabricated):
    folder = exported.parent.parent
    bad = folder / "toy" / "zzz__quick-v1.json"
    good = json.loads(exported.read_text())
    bad.write_text(json.dumps([good, {"format": "invarbench-results", "format_version": 1}]))
    error = _error(invoke("results", "import", str(folder), "--db", target))
    assert error.startswith(f"Error: {bad} (document 2): field 'content_sha256': Field required")
    _nothing_imported(target)  # the good file, read first, was not imported either


def test_importing_a_run_that_is_stored_with_other_content_is_refused(exported, sqlite_url, fabricated):
    doc = json.loads(exported.read_text())
    doc["metrics"][0]["value"] = 0.5
    doc["content_sha256"] = content_digest(doc)  # a consistent document, but not the run that is stored
    exported.write_text(json.dumps(doc))
    run_id = Store(sqlite_url).run_id_for_uid(doc["run"]["uid"])
    assert _error(invoke("results", "import", str(exported), "--db", sqlite_url)) == (
        f"Error: {exported}: run {doc['run']['uid']} is already in the database as run {run_id}, with different "
        "content: nothing was imported"
    )
    assert Store(sqlite_url).get_run(run_id).metrics[0].value == 2 / 3


def test_export_refuses_an_out_path_of_the_wrong_kind(sqlite_url, tmp_path):
    populate(Store(sqlite_url))
    file = tmp_path / "a-file"
    file.write_text("x")
    assert _error(invoke("results", "export", "--out", str(file), "--db", sqlite_url)) == (
        f"Error: {file} is a file: the JSON export writes a folder of files"
    )
    assert _error(invoke("results", "export", "--format", "csv", "--out", str(tmp_path), "--db", sqlite_url)) == (
        f"Error: {tmp_path} is a folder: the CSV export writes one file"
    )
    bad_format = invoke("results", "export", "--format", "xml", "--db", sqlite_url)
    assert bad_format.exit_code == 2 and "'xml' is not one of 'json', 'csv'" in _flat(bad_format.output)


def test_the_documented_example_is_a_valid_document_in_the_exact_format():
    text = (Path(__file__).resolve().parents[1] / "docs" / "store.md").read_text(encoding="utf-8")
    [example] = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    data = json.loads(example)
    doc = parse_document(data, "docs/store.md")  # its content_sha256 is the real one
    assert doc.format_version == FORMAT_VERSION and example == dumps(data)
    assert [m.value for m in doc.metrics][:2] == [2 / 3, 1 / 3] and math.isnan(doc.metrics[2].value)
