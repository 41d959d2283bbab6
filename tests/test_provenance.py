"""The provenance type is the one list of a run's provenance fields: every field is a ``runs`` column of the same
name, survives the store, the JSON export and the import, has its CSV column, takes part in resume matching when
it says so, and is shown by ``results show``, flagged by ``results compare`` and shown on the site when it says so.
Adding a field in one place and forgetting another fails here. Also: old results files re-export byte for byte,
and the version the runs record is the changelog's newest release."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from store_helpers import (  # fixtures
    add_model,
    db_url,
    fabricated,
    fresh_database,
    metric,
    provenance,
    settings_fields,
    sqlite_url,
)
from typer.testing import CliRunner

import invarbench
from invarbench.cli import app
from invarbench.site.build import build_site
from invarbench.store import PROVENANCE_FIELDS, Provenance, Store
from invarbench.store.codec import encode_floats
from invarbench.store.csv_view import CSV_COLUMNS
from invarbench.store.documents import FORMAT_VERSION, RUN_FIELDS_SINCE
from invarbench.store.schema import RunRecord

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
# The runs table's own columns: what a run is and how it went, not what produced its numbers. A new column
# belongs either here or (far more likely) in Provenance.
RUN_OWN_COLUMNS = {
    "id",
    "uid",
    "model_id",
    "status",
    "error",
    "flags",
    "started_at",
    "finished_at",
    "duration_s",
    "peak_memory_bytes",
    "attempts",
    "owner",
    "updated_at",
}
# A provenance in which every field has a value (none is None).
FULL = provenance(
    suite_num_examples=6,
    git_commit="c" * 40,
    data_source="npz:/data/mine.npz sha256:" + "0" * 64,
    model_dtype="bfloat16",
    data_digest="v1:" + "d" * 64,
    **settings_fields(),
)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def other(value: Any) -> Any:
    """A different value of the same kind (and length, for strings)."""
    if isinstance(value, bool) or value is None:
        raise AssertionError(f"no other value for {value!r}")
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("x" if value[-1] != "x" else "y")
    if isinstance(value, dict):
        return {**value, "seed": 99}
    raise AssertionError(f"no other value for {value!r}")


def finished(store: Store, model_id: int, prov: Provenance) -> int:
    run_id = store.start_run(model_id, prov)
    store.finish_run(run_id, [metric("clean_accuracy", 2 / 3)], [], duration_s=1.0)
    return run_id


# --- one list of fields -------------------------------------------------------------------------
def test_every_provenance_field_is_a_runs_column_of_the_same_name():
    columns = RunRecord.__table__.columns
    for f in PROVENANCE_FIELDS:
        assert f.name in columns, f"Provenance.{f.name} has no runs column: add it to schema.py and a migration"
        assert columns[f.name].nullable == f.nullable, f"runs.{f.name} and Provenance.{f.name} disagree on NULL"
    unclassified = set(columns.keys()) - RUN_OWN_COLUMNS - {f.name for f in PROVENANCE_FIELDS}
    assert not unclassified, f"runs columns that are neither provenance nor the run's own: {sorted(unclassified)}"
    assert [f.name for f in fields(Provenance)] == [f.name for f in PROVENANCE_FIELDS]


def test_the_fields_metadata_is_consistent():
    for attr in ("name", "label", "json"):
        values = [getattr(f, attr) for f in PROVENANCE_FIELDS]
        assert len(values) == len(set(values)), attr
    csv_names = [f.csv for f in PROVENANCE_FIELDS if f.csv is not None]
    assert len(csv_names) == len(set(csv_names)) and len(CSV_COLUMNS) == len(set(CSV_COLUMNS))
    # the JSON order: format version 1's fields, then each later version's; each later field may be absent
    assert [f.since for f in PROVENANCE_FIELDS] == sorted(f.since for f in PROVENANCE_FIELDS)
    assert {f.since for f in PROVENANCE_FIELDS} == set(range(1, FORMAT_VERSION + 1))
    assert all(f.nullable for f in PROVENANCE_FIELDS if f.since > 1)
    assert RUN_FIELDS_SINCE[2] == ("suite_num_examples", "data_source", "model_dtype")
    assert RUN_FIELDS_SINCE[3] == ("suite_settings_hash", "suite_settings")
    assert RUN_FIELDS_SINCE[4] == ("data_digest",)
    # resume matching compares values in SQL: never a JSON column (PostgreSQL's json has no equality)
    by_name = {f.name: f for f in PROVENANCE_FIELDS}
    assert not by_name["suite_settings"].resume and by_name["suite_settings_hash"].resume
    assert all(f.value(FULL) is not None for f in PROVENANCE_FIELDS), "FULL must set every field"


def test_a_provenance_needs_every_field():
    with pytest.raises(TypeError):  # every field of Provenance itself must be given
        Provenance(**{k: v for k, v in FULL.values().items() if k != "suite_settings_hash"})


# --- the store, the JSON export and the import, the CSV ------------------------------------------
def test_every_field_survives_the_store_the_json_export_and_the_import(db_url, tmp_path, fabricated):
    source = Store(db_url)
    run_id = finished(source, add_model(source), FULL)
    stored = source.get_run(run_id)
    assert Provenance.of(stored) == FULL

    exported = invoke("results", "export", "--run", str(run_id), "--out", str(tmp_path / "out"), "--db", db_url)
    assert exported.exit_code == 0, exported.output
    [file] = (tmp_path / "out").rglob("*.json")
    doc = json.loads(file.read_text(encoding="utf-8"))
    assert doc["format_version"] == FORMAT_VERSION
    for f in PROVENANCE_FIELDS:
        assert doc["run"][f.json] == encode_floats(f.value(FULL)), f.name

    with fresh_database("sqlite" if db_url.startswith("sqlite") else "postgresql", tmp_path / "target") as target_url:
        imported = invoke("results", "import", str(file), "--db", target_url)
        assert imported.exit_code == 0, imported.output
        target = Store(target_url)
        [copy] = target.list_runs()
        assert Provenance.of(copy) == FULL
        again = invoke("results", "export", "--run", str(copy.id), "--out", str(tmp_path / "again"), "--db", target_url)
        assert again.exit_code == 0, again.output
        assert (tmp_path / "again" / file.relative_to(tmp_path / "out")).read_bytes() == file.read_bytes()


def test_every_field_with_a_csv_column_is_in_the_csv(sqlite_url):
    store = Store(sqlite_url)
    finished(store, add_model(store), FULL)
    result = invoke("results", "export", "--format", "csv", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(row) == list(CSV_COLUMNS)
    for f in PROVENANCE_FIELDS:
        if f.csv is not None:
            assert row[f.csv] == str(f.value(FULL)), f.name
    assert "suite_settings_hash" in row and "suite_settings" not in row


@pytest.mark.parametrize(
    "path",
    [
        REPO / "tests" / "data" / "lenet-standard__standard-v2.json",
        *sorted((REPO / "leaderboard" / "results").rglob("*.json")),
    ],
    ids=lambda p: p.relative_to(REPO).as_posix(),
)
def test_published_files_reimport_and_reexport_to_the_same_bytes(path, tmp_path):
    """Every results file, of whatever format version it was written in, imports and exports again
    to the same bytes (so its content digest stays valid)."""
    if any(part.endswith(".artifacts") for part in path.parts):
        pytest.skip("an artifact, not a results file")
    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    assert invoke("results", "import", str(path), "--db", url).exit_code == 0
    [run] = Store(url).list_runs()
    out = tmp_path / "again"
    result = invoke("results", "export", "--run", str(run.id), "--out", str(out), "--db", url)
    assert result.exit_code == 0, result.output
    [file] = out.glob("*/*.json")  # the run's files (NSPGD's image strips) lie in <stem>.artifacts/ beside it
    assert json.loads(path.read_text())["format_version"] <= FORMAT_VERSION
    assert file.read_bytes() == path.read_bytes()
    files = path.with_suffix(".artifacts")
    for original in files.iterdir() if files.is_dir() else []:
        assert (file.with_suffix(".artifacts") / original.name).read_bytes() == original.read_bytes()


# --- resume matching ---------------------------------------------------------------------------
def test_resume_matches_every_resume_field_and_no_other(db_url):
    store = Store(db_url)
    model_id = add_model(store)
    failed = store.start_run(model_id, FULL)
    store.fail_run(failed, "RuntimeError: boom")
    for f in PROVENANCE_FIELDS:
        changed = [replace(FULL, **{f.name: other(f.value(FULL))})]
        if f.nullable:
            changed.append(replace(FULL, **{f.name: None}))
        for prov in changed:
            resumed = store.resume_run(model_id, prov)
            if f.resume:
                assert resumed is None, f"a run with another {f.name} was resumed"
            else:
                assert resumed is not None and resumed.run_id == failed, f.name
    resumed = store.resume_run(model_id, FULL)  # this process owns it now; it is not alive elsewhere
    assert resumed is not None and resumed.run_id == failed


# --- results show, results compare, the site ---------------------------------------------------------
def test_show_lists_every_listed_field(sqlite_url):
    store = Store(sqlite_url)
    run_id = finished(store, add_model(store), FULL)
    out = invoke("results", "show", str(run_id), "--db", sqlite_url).stdout
    listed = [f for f in PROVENANCE_FIELDS if f.listed]
    assert [f.name for f in PROVENANCE_FIELDS if not f.listed] == ["suite_settings"]  # its hash is listed
    for f in listed:
        assert re.search(rf"^│ {re.escape(f.label)}\s+│ {re.escape(f.text(FULL))}\s+│$", out, flags=re.M), f.name
    labels = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│ ")]
    assert [label for label in labels if label in {f.label for f in listed}] == [f.label for f in listed]
    # NULLs are written in words
    null_run = finished(store, add_model(store), provenance())
    null_out = invoke("results", "show", str(null_run), "--db", sqlite_url).stdout
    for label, text in (
        ("git commit", "unknown"),
        ("examples in the suite", "not recorded"),
        ("data", "the toy test split"),
        ("model dtype", "not recorded"),
        ("suite settings hash", "not recorded"),
    ):
        assert re.search(rf"^│ {label}\s+│ {text}\s+│$", null_out, flags=re.M), label


def test_compare_flags_each_listed_field_that_differs(sqlite_url):
    store = Store(sqlite_url)
    model_id = add_model(store)
    base = finished(store, model_id, FULL)
    for f in PROVENANCE_FIELDS:
        changed = replace(FULL, **{f.name: other(f.value(FULL))})
        if f.name == "suite_settings_hash":  # the hash of other settings: both change together
            changed = replace(FULL, **settings_fields(other(FULL.suite_settings)))
        if f.name == "suite_settings":
            continue  # never alone: its hash changes with it (above)
        run_id = finished(store, model_id, changed)
        result = invoke("results", "compare", str(base), str(run_id), "--db", sqlite_url)
        assert result.exit_code == 0, result.output
        differs = result.stdout.split("provenance that")[1]
        rows = re.findall(r"^│ ([a-z][^│]*?)\s+│ ([^│]*?)\s+│ ([^│]*?)\s+│$", differs, flags=re.M)
        assert rows == [(f.label, f.text(FULL), f.text(changed))], f.name
        settings_line = "Suite settings differ" in result.stdout
        assert settings_line == (f.name == "suite_settings_hash"), f.name


def test_compare_names_the_suite_settings_that_differ(sqlite_url):
    store = Store(sqlite_url)
    model_id = add_model(store)
    settings = FULL.suite_settings
    steps = {
        **settings,
        "measurements": {"pgd_linf": {**settings["measurements"]["pgd_linf"], "steps": 20}},
        "extra": [1, 2],
    }
    a = finished(store, model_id, FULL)
    b = finished(store, model_id, replace(FULL, **settings_fields(steps)))
    result = invoke("results", "compare", str(a), str(b), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(
        f"Suite settings differ: run {a} and run {b} were measured with different suite settings (their hashes "
        "differ).\n  measurements.pgd_linf.steps: A 10, B 20\n  extra: A absent, B [1, 2]\n"
    )


def test_the_site_shows_every_site_field_the_run_recorded(sqlite_url, tmp_path):
    store = Store(sqlite_url)
    model_id = add_model(store)
    full = finished(store, model_id, FULL)
    html = build_site(store, tmp_path / "site").read_text(encoding="utf-8")
    row = re.search(rf'<tr [^>]*data-run="{full}"[^>]*>.*?</tr>', html, flags=re.S).group(0)
    site = [f for f in PROVENANCE_FIELDS if f.site]
    assert [f.name for f in site] == ["device", "model_dtype"]
    assert " · ".join(f.text(FULL) for f in site) in row  # cpu · bfloat16
    # a field the run did not record is left out
    bare = finished(store, add_model(store, card_id="toy/bare"), provenance())
    html = build_site(store, tmp_path / "site").read_text(encoding="utf-8")
    row = re.search(rf'<tr [^>]*data-run="{bare}"[^>]*>.*?</tr>', html, flags=re.S).group(0)
    assert '<span class="ci">cpu</span>' in row and "cpu ·" not in row


# --- the version the runs record -----------------------------------------------------------------
def test_the_version_is_the_changelogs_newest_release():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, flags=re.M)
    assert releases[0] == invarbench.__version__ and releases[-1] == "0.1.0"
