"""Smoke runs (``--limit``) and runs on custom data (``--data``) are never ranked among full runs: the
site lists them apart, the JSON export leaves them out and says so, and ``--run ID`` exports any one
of them with its data source and example counts. And the provenance field ``model_dtype``: stored,
matched on resume, exported, imported, shown and compared. (Every provenance field, generically:
tests/test_provenance.py.)"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from store_helpers import (  # fixtures
    add_model,
    db_url,
    fabricated,
    metric,
    provenance,
    settings_of,
    sqlite_url,
)
from typer.testing import CliRunner

from invarbench.cli import app
from invarbench.errors import ValidationError
from invarbench.leaderboard_policy import CUSTOM_DATA, FULL, SMOKE
from invarbench.site.build import UNRANKED_TITLE, build_site, leaderboard
from invarbench.store import Store
from invarbench.store.documents import FORMAT_VERSION, RUN_FIELDS_SINCE, content_digest, parse_document
from invarbench.suites import load_suite

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
QUICK = load_suite("quick", "mnist5k")  # a real suite: its file says how many examples a full run has
CUSTOM = "npz:/data/mine.npz sha256:" + "0" * 64


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    return result.stderr.strip()


def _flat(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def mnist_model(store: Store, name: str = "lenet-standard", training: str = "standard") -> int:
    card_id = f"mnist5k/{name}"
    return store.upsert_model(
        card_id=card_id,
        name=f"LeNet {name}",
        dataset="mnist5k",
        card_yaml=f"id: {card_id}\n",
        card_sha256=(name.encode().hex() * 64)[:64],
        file_sha256="b" * 64,
        hub_repo=None,
        hub_revision=None,
        training_method=training,
    )


def mnist_prov(examples: int, *, record: bool = True, **changes):
    """A quick/mnist5k run over ``examples`` examples: ``--limit examples`` when fewer than the suite's. Without
    ``record``, the run recorded neither the suite's number of examples nor its settings (as before 0004)."""
    fields = dict(
        suite_name="quick",
        suite_version=QUICK.version,
        dataset="mnist5k",
        examples_requested=examples,
        examples_effective=examples,
        model_dtype="float32",
        suite_num_examples=QUICK.num_examples if record else None,
        **(settings_of(QUICK) if record else {}),
    )
    fields.update(changes)
    return provenance(**fields)


def finished(store: Store, model_id: int, prov, clean: float, robust: float) -> int:
    run_id = store.start_run(model_id, prov)
    n = prov.examples_effective
    store.finish_run(
        run_id, [metric("clean_accuracy", clean, n=n), metric("robust_accuracy_linf", robust, n=n)], [], duration_s=1.0
    )
    return run_id


def html_parts(tmp_path: Path, store: Store) -> tuple[str, str, str]:
    """The page, its ranked table(s) and its section listed apart, as text."""
    html = build_site(store, tmp_path / "site").read_text(encoding="utf-8")
    ranked = "".join(re.findall(r'<table class="leaderboard".*?</table>', html, flags=re.S))
    apart = "".join(re.findall(r'<table class="unranked".*?</table>', html, flags=re.S))
    return html, ranked, apart


def row_of(table: str, run_id: int) -> str:
    match = re.search(rf'<tr [^>]*data-run="{run_id}"[^>]*>.*?</tr>', table, flags=re.S)
    assert match, f"run {run_id} is not in the table"
    return match.group(0)


# --- 1. the leaderboard ranks full runs only ------------------------------------------------------
@pytest.mark.parametrize("record", [True, False], ids=["recorded", "from-suite-file"])
def test_a_lone_smoke_run_is_not_ranked_but_listed_apart(db_url, tmp_path, record):
    assert QUICK.num_examples > 4
    store = Store(db_url)
    smoke = finished(store, mnist_model(store), mnist_prov(4, record=record), clean=1.0, robust=0.75)

    assert store.leaderboard_runs() == [] and store.latest_finished_runs() == []
    [standing] = store.unranked_runs()
    assert (standing.run.id, standing.kind, standing.full_examples) == (smoke, SMOKE, QUICK.num_examples)

    [board] = leaderboard(store)
    assert board.rows == [] and [r.run_id for r in board.unranked] == [smoke]
    html, ranked, apart = html_parts(tmp_path, store)
    assert ranked == ""  # no ranked table at all
    assert (
        'class="no-ranked" data-dataset="mnist5k">No full run on the mnist5k test split yet: nothing is ranked.'
    ) in html
    assert f'<h3 id="unranked-mnist5k-quick-v{QUICK.version}">{UNRANKED_TITLE}</h3>' in html
    assert UNRANKED_TITLE == "Smoke runs and runs on custom data — not ranked"
    row = row_of(apart, smoke)
    assert f'<td class="num" data-field="examples">4 of {QUICK.num_examples}</td>' in row
    assert '<td class="data" data-field="data">mnist5k test split</td>' in row
    assert "smoke run (--limit)" in row and "100.00%" in row and "75.00%" in row
    # the page says that such runs are never ranked
    note = re.search(r'<p id="unranked-note">(.*?)</p>', html, flags=re.S).group(1)
    assert "never ranked" in note and "--limit" in note and "--data" in note
    # ... and that the data digest decides: a copy of the test split's first images is ranked
    assert "data digest</a> decides" in note and "copy of them (a prefix <code>test_batch</code>" in note
    assert "<code>--data npz:</code>" in note
    assert 'href="https://' in note and note.split('href="')[1].split('"')[0].endswith("/datasets.md#the-data-digest")


def test_a_full_run_is_ranked_and_a_smoke_run_of_the_same_model_is_listed_apart(db_url, tmp_path):
    store = Store(db_url)
    standard, robust_model = mnist_model(store), mnist_model(store, "lenet-pgd-at", "pgd_at")
    full = finished(store, standard, mnist_prov(QUICK.num_examples), clean=0.98, robust=0.02)
    other = finished(store, robust_model, mnist_prov(QUICK.num_examples), clean=0.95, robust=0.6)
    # newer, and better on its 4 examples than either full run: still not ranked
    smoke = finished(store, standard, mnist_prov(4, seed=3), clean=1.0, robust=1.0)

    assert [r.id for r in store.latest_finished_runs()] == [full, other]
    assert [(st.run.id, st.kind) for st in store.unranked_runs()] == [(smoke, SMOKE)]
    _, ranked, apart = html_parts(tmp_path, store)
    assert re.findall(r'data-run="(\d+)"', ranked) == [str(other), str(full)]  # ranked by robust accuracy
    assert f'data-run="{smoke}"' not in ranked and re.findall(r'data-run="(\d+)"', apart) == [str(smoke)]
    first = row_of(ranked, other)
    assert re.search(r"<td data-sort=\"1\">1</td>", first) and "60.00%" in first and "95.00%" in first
    assert re.search(r"<td data-sort=\"2\">2</td>", row_of(ranked, full)) and "2.00%" in row_of(ranked, full)
    assert "100.00%" not in ranked and "100.00%" in row_of(apart, smoke)
    assert f">4 of {QUICK.num_examples}<" in row_of(apart, smoke)
    # where a run's device is shown, so is the dtype its model computed in
    assert "cpu · float32" in row_of(ranked, full) and "cpu · float32" in row_of(apart, smoke)


def test_a_run_on_custom_data_is_never_ranked_whatever_its_size(db_url, tmp_path):
    store = Store(db_url)
    model_id = mnist_model(store)
    custom = finished(store, model_id, mnist_prov(QUICK.num_examples, data_source=CUSTOM), clean=0.5, robust=0.5)
    assert store.leaderboard_runs() == []
    assert [(st.run.id, st.kind) for st in store.unranked_runs()] == [(custom, CUSTOM_DATA)]
    full = finished(store, model_id, mnist_prov(QUICK.num_examples), clean=0.9, robust=0.1)
    assert [r.id for r in store.latest_finished_runs()] == [full]
    _, ranked, apart = html_parts(tmp_path, store)
    row = row_of(apart, custom)
    assert f'data-field="data">{CUSTOM}</td>' in row and "custom data (--data)" in row
    assert f">{QUICK.num_examples} of {QUICK.num_examples}<" in row
    assert f'data-run="{custom}"' not in ranked and f'data-run="{full}"' in ranked


def test_without_a_recorded_size_an_old_suite_version_is_judged_by_the_most_examples_asked(db_url):
    """Runs stored before migration 0004, of a suite version the suite files no longer hold."""
    store = Store(db_url)
    model_id = add_model(store)  # the toy data set: no suite file
    full = finished(store, model_id, provenance(examples_requested=6, examples_effective=6), 0.5, 0.25)
    smoke = finished(store, model_id, provenance(examples_requested=4, examples_effective=4), 1.0, 1.0)
    short = finished(store, model_id, provenance(examples_requested=6, examples_effective=5), 1.0, 1.0)
    kinds = {st.run.id: (st.kind, st.full_examples) for st in store.standings()}
    assert kinds == {full: (FULL, 6), smoke: (SMOKE, 6), short: (SMOKE, 6)}
    # a recorded size wins over that guess
    recorded = finished(
        store, model_id, provenance(examples_requested=6, examples_effective=6, suite_num_examples=10, seed=1), 0.5, 0.5
    )
    assert store.standing_of([store.get_run(recorded)])[0].kind == SMOKE
    assert [r.id for r in store.leaderboard_runs()] == [full]


# --- 2. the JSON export: its rule, what it leaves out, --run ---------------------------------------
@pytest.fixture
def smoke_and_custom(sqlite_url) -> dict[str, int]:
    """A database of two smoke runs, one run on custom data, one failed run: no full run."""
    store = Store(sqlite_url)
    model_id = mnist_model(store)
    ids = {
        "smoke": finished(store, model_id, mnist_prov(4), 1.0, 0.5),
        "smoke8": finished(store, model_id, mnist_prov(8, model_dtype="bfloat16"), 0.875, 0.25),
        "custom": finished(store, model_id, mnist_prov(12, data_source=CUSTOM), 0.75, 0.5),
    }
    ids["failed"] = store.start_run(model_id, mnist_prov(4, seed=9))
    store.fail_run(ids["failed"], "RuntimeError: boom")
    return ids


def test_the_export_says_what_it_left_out_and_why(sqlite_url, smoke_and_custom, tmp_path):
    result = invoke("results", "export", "--format", "json", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert result.stderr.splitlines() == [
        "Left out 4 run(s): 2 smoke run(s) (--limit), 1 on custom data (--data), 1 not finished; "
        "export one with --run ID"
    ]
    out = tmp_path / "results"
    to_folder = invoke("results", "export", "--out", str(out), "--db", sqlite_url)
    assert to_folder.exit_code == 0, to_folder.output
    assert to_folder.stderr.splitlines() == [
        f"Exported 0 run(s) to {out}",
        "Left out 4 run(s): 2 smoke run(s) (--limit), 1 on custom data (--data), 1 not finished; "
        "export one with --run ID",
    ]
    # a full run is exported; the others are still counted; --model restricts the count too
    store = Store(sqlite_url)
    full = finished(store, store.get_run(smoke_and_custom["smoke"]).model_id, mnist_prov(QUICK.num_examples), 0.9, 0.1)
    again = invoke("results", "export", "--db", sqlite_url)
    assert [d["run"]["uid"] for d in json.loads(again.stdout)] == [store.get_run(full).uid]
    assert again.stderr.splitlines()[-1].startswith("Left out 4 run(s): 2 smoke run(s) (--limit), 1 on custom data")
    nothing = invoke("results", "export", "--model", "mnist5k/none", "--db", sqlite_url)
    assert nothing.exit_code == 0 and nothing.stdout == "[]\n" and nothing.stderr == ""


def test_only_unfinished_runs_left_out_get_no_run_hint(sqlite_url):
    store = Store(sqlite_url)
    store.start_run(mnist_model(store), mnist_prov(4))
    result = invoke("results", "export", "--db", sqlite_url)
    assert result.exit_code == 0 and result.stderr.strip() == "Left out 1 run(s): 1 not finished"


def test_the_help_states_the_rule_the_code_follows():
    result = invoke("results", "export", "--help")
    assert result.exit_code == 0
    text = _flat(result.output)
    assert "newest finished run per model and suite version" not in text
    for phrase in (
        "JSON: per (model card, suite name, suite version), the newest (highest run id) finished full run, i.e. on "
        "the data set's own test split over the suite version's full number of examples.",
        "Left out, and counted on stderr: smoke runs (--limit), runs on custom data (--data), full runs superseded "
        "by a newer one, unfinished runs.",
        "CSV: one row per (run, metric) of every run, of any status.",
        "--run ID exports exactly that finished run, smoke and custom-data runs included, in either format.",
    ):
        assert phrase in text, phrase


def test_the_export_takes_the_newest_full_run_of_each_suite_version(sqlite_url):
    """What the help says, checked: newest (highest id) full run per (model, suite, version)."""
    store = Store(sqlite_url)
    model_id = mnist_model(store)
    n = QUICK.num_examples
    finished(store, model_id, mnist_prov(n), 0.9, 0.1)
    newest = finished(store, model_id, mnist_prov(n, seed=1), 0.8, 0.2)
    finished(store, model_id, mnist_prov(4, seed=2), 1.0, 1.0)  # newer still, but a smoke run
    older_version = finished(store, model_id, mnist_prov(n, suite_version=QUICK.version - 1, record=True), 0.7, 0.3)
    result = invoke("results", "export", "--db", sqlite_url)
    exported = [d["run"]["uid"] for d in json.loads(result.stdout)]
    assert exported == [store.get_run(i).uid for i in (newest, older_version)]
    assert result.stderr.strip() == (
        "Left out 2 run(s): 1 smoke run(s) (--limit), 1 superseded by a newer full run; export one with --run ID"
    )


def test_run_exports_exactly_that_run_and_an_import_keeps_its_data_and_counts(
    sqlite_url, smoke_and_custom, tmp_path, fabricated
):
    source = Store(sqlite_url)
    result = invoke(
        "results",
        "export",
        "--run",
        str(smoke_and_custom["custom"]),
        "--run",
        str(smoke_and_custom["smoke"]),
        "--db",
        sqlite_url,
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    docs = json.loads(result.stdout)
    custom, smoke = source.get_run(smoke_and_custom["custom"]), source.get_run(smoke_and_custom["smoke"])
    assert [d["run"]["uid"] for d in docs] == [custom.uid, smoke.uid]  # in the order asked
    # the runs record suite settings but no data digest: the newest format version but one
    assert [d["format_version"] for d in docs] == [FORMAT_VERSION - 1, FORMAT_VERSION - 1] == [3, 3]
    fields = (
        "examples_requested",
        "examples_effective",
        "suite_num_examples",
        "data_source",
        "model_dtype",
        "suite_settings_hash",
        "suite_settings",
    )
    assert [tuple(d["run"][f] for f in fields) for d in docs] == [
        (12, 12, QUICK.num_examples, CUSTOM, "float32", QUICK.settings_hash(), QUICK.settings()),
        (4, 4, QUICK.num_examples, None, "float32", QUICK.settings_hash(), QUICK.settings()),
    ]

    file = tmp_path / "picked.json"
    file.write_text(result.stdout)
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    imported = invoke("results", "import", str(file), "--db", target_url)
    assert imported.exit_code == 0, imported.output
    target = Store(target_url)
    by_uid = {r.uid: r for r in target.list_runs()}
    for original in (custom, smoke):
        copy = by_uid[original.uid]
        assert tuple(getattr(copy, f) for f in fields) == tuple(getattr(original, f) for f in fields)
    # in the other database they stand as they stood: not ranked
    assert target.leaderboard_runs() == []
    assert {st.run.uid: st.kind for st in target.unranked_runs()} == {custom.uid: CUSTOM_DATA, smoke.uid: SMOKE}
    # and they export again to the very same documents
    back = invoke(
        "results", "export", "--run", str(by_uid[custom.uid].id), "--run", str(by_uid[smoke.uid].id), "--db", target_url
    )
    assert back.stdout == result.stdout


def test_run_into_a_folder_never_takes_a_full_runs_file_name(sqlite_url, smoke_and_custom, tmp_path):
    store = Store(sqlite_url)
    smoke, custom = store.get_run(smoke_and_custom["smoke"]), store.get_run(smoke_and_custom["custom"])
    out = tmp_path / "results"
    result = invoke(
        "results", "export", "--run", str(smoke.id), "--run", str(custom.id), "--out", str(out), "--db", sqlite_url
    )
    assert result.exit_code == 0, result.output
    stem = f"lenet-standard__quick-v{QUICK.version}"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == sorted(
        [f"mnist5k/{stem}__smoke-4ex-{smoke.uid[:8]}.json", f"mnist5k/{stem}__custom-data-{custom.uid[:8]}.json"]
    )
    assert result.stderr.splitlines()[-1] == f"Exported 2 run(s) to {out}"
    # two full runs of one model and suite version would share a file: refused before anything is written
    model_id = smoke.model_id
    a = finished(store, model_id, mnist_prov(QUICK.num_examples), 0.9, 0.1)
    b = finished(store, model_id, mnist_prov(QUICK.num_examples, seed=4), 0.9, 0.1)
    clash = tmp_path / "clash"
    assert _error(
        invoke("results", "export", "--run", str(a), "--run", str(b), "--out", str(clash), "--db", sqlite_url)
    ) == (
        f"Error: runs {a} and {b} would both be written to {clash / 'mnist5k' / (stem + '.json')}: export them one "
        "at a time, into different folders"
    )
    assert not clash.exists()


def test_run_refuses_an_unknown_or_unfinished_run_and_filters(sqlite_url, smoke_and_custom):
    assert _error(invoke("results", "export", "--run", "42", "--db", sqlite_url)) == (
        f"Error: run 42 not found in {sqlite_url}: see 'invarbench results list'"
    )
    failed = smoke_and_custom["failed"]
    for fmt in ("json", "csv"):
        assert _error(
            invoke(
                "results",
                "export",
                "--format",
                fmt,
                "--run",
                str(smoke_and_custom["smoke"]),
                "--run",
                str(failed),
                "--db",
                sqlite_url,
            )
        ) == (
            f"Error: run {failed} is failed, not finished: only finished runs are exported (continue it with "
            "'invarbench eval mnist5k/lenet-standard --resume' and the options it was started with)"
        )
    assert _error(
        invoke("results", "export", "--run", "1", "--model", "mnist5k/lenet-standard", "--db", sqlite_url)
    ) == ("Error: --run exports exactly the runs it names: leave out --dataset and --model")


def test_csv_and_json_exports_carry_the_data_source_dtype_and_counts(sqlite_url, smoke_and_custom):
    store = Store(sqlite_url)
    every = invoke("results", "export", "--format", "csv", "--db", sqlite_url)
    assert every.exit_code == 0, every.output
    rows = list(csv.DictReader(io.StringIO(every.stdout)))
    by_run = {(r["run_id"], r["metric"]): r for r in rows}
    custom = by_run[(str(smoke_and_custom["custom"]), "clean_accuracy")]
    assert (
        custom["data_source"],
        custom["examples_requested"],
        custom["examples_effective"],
        custom["suite_num_examples"],
        custom["model_dtype"],
        custom["suite_settings_hash"],
    ) == (CUSTOM, "12", "12", str(QUICK.num_examples), "float32", QUICK.settings_hash())
    assert "suite_settings" not in custom  # the settings are in the JSON export; the CSV has their hash
    smoke8 = by_run[(str(smoke_and_custom["smoke8"]), "clean_accuracy")]
    assert (smoke8["data_source"], smoke8["examples_effective"], smoke8["model_dtype"]) == ("", "8", "bfloat16")
    picked = invoke(
        "results", "export", "--format", "csv", "--run", str(smoke_and_custom["custom"]), "--db", sqlite_url
    )
    assert {r["run_id"] for r in csv.DictReader(io.StringIO(picked.stdout))} == {str(smoke_and_custom["custom"])}
    picked_json = invoke("results", "export", "--run", str(smoke_and_custom["smoke8"]), "--db", sqlite_url)
    doc = json.loads(picked_json.stdout)[0]
    assert doc["run"]["data_source"] is None and doc["run"]["model_dtype"] == "bfloat16"
    assert doc["run"]["uid"] == store.get_run(smoke_and_custom["smoke8"]).uid


# --- format versions: old files stay importable and unchanged --------------------------------------
def test_a_published_version_1_file_imports_with_no_dtype_and_exports_to_the_same_bytes(tmp_path):
    # A results file as version 1 of the format wrote it (the reference model's standard v2 run).
    published = REPO / "tests" / "data" / "lenet-standard__standard-v2.json"
    data = json.loads(published.read_text(encoding="utf-8"))
    later_fields = {name for v in RUN_FIELDS_SINCE for name in RUN_FIELDS_SINCE[v]}  # added after version 1
    assert data["format_version"] == 1 and not later_fields & set(data["run"])
    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    assert invoke("results", "import", str(published), "--db", url).exit_code == 0
    store = Store(url)
    [run] = store.list_runs()
    assert (run.model_dtype, run.data_source, run.suite_num_examples) == (None, None, None)
    assert [r.id for r in store.leaderboard_runs()] == [run.id]  # without a recorded size, still a full run
    out = tmp_path / "again"
    assert invoke("results", "export", "--out", str(out), "--db", url).exit_code == 0
    assert (out / "mnist5k" / published.name).read_bytes() == published.read_bytes()
    again = invoke("results", "import", str(published), "--db", url)  # importing twice changes nothing
    assert again.exit_code == 0 and again.stdout.splitlines()[-1] == "0 run(s) imported, 1 already present."


def _resigned(doc: dict) -> dict:
    doc["content_sha256"] = content_digest(doc)
    return doc


def test_each_versions_fields_are_required_from_that_version_and_refused_before(sqlite_url, smoke_and_custom):
    doc = json.loads(invoke("results", "export", "--run", str(smoke_and_custom["smoke"]), "--db", sqlite_url).stdout)[0]
    assert doc["format_version"] == 3
    parsed = parse_document(doc, "x.json")
    assert (parsed.run.model_dtype, parsed.run.suite_settings_hash) == ("float32", QUICK.settings_hash())
    for field in ("model_dtype", "suite_settings", "suite_settings_hash"):
        missing = json.loads(json.dumps(doc))
        del missing["run"][field]
        required = rf"^x.json: field 'run.{field}': Field required in format_version 3$"
        with pytest.raises(ValidationError, match=required):
            parse_document(_resigned(missing), "x.json")
    for version, first_new in ((1, "suite_num_examples"), (2, "suite_settings_hash")):
        old = json.loads(json.dumps(doc))
        old["format_version"] = version
        with pytest.raises(
            ValidationError,
            match=rf"field 'run.{first_new}' is new in format_version {version + 1}, "
            rf"but the document says {version}",
        ):
            parse_document(_resigned(old), "x.json")


# --- 3. model_dtype ---------------------------------------------------------------------------------
def test_resume_matches_the_model_dtype(db_url):
    store = Store(db_url)
    model_id = mnist_model(store)
    failed = store.start_run(model_id, mnist_prov(4, model_dtype="float16"))
    store.fail_run(failed, "RuntimeError: boom")
    assert store.get_run(failed).model_dtype == "float16"
    assert store.resume_run(model_id, mnist_prov(4, model_dtype="float32")) is None
    assert store.resume_run(model_id, mnist_prov(4, model_dtype=None)) is None
    resumed = store.resume_run(model_id, mnist_prov(4, model_dtype="float16"))
    assert resumed is not None and resumed.run_id == failed


def test_show_and_compare_give_the_dtype_and_the_data(sqlite_url, smoke_and_custom):
    smoke, smoke8, custom = smoke_and_custom["smoke"], smoke_and_custom["smoke8"], smoke_and_custom["custom"]
    shown = invoke("results", "show", str(smoke8), "--db", sqlite_url)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"│ model dtype\s+│ bfloat16\s+│", shown.stdout)
    assert re.search(r"│ examples requested\s+│ 8\s+│\n│ examples evaluated\s+│ 8\s+│", shown.stdout)
    assert re.search(rf"│ examples in the suite\s+│ {QUICK.num_examples}\s+│", shown.stdout)
    assert re.search(rf"│ suite settings hash\s+│ {QUICK.settings_hash()}\s+│", shown.stdout)
    assert re.search(
        rf"│ leaderboard\s+│ not ranked: a smoke run over 8 of the suite's {QUICK.num_examples} examples "
        r"\(--limit\)\s+│",
        shown.stdout,
    )
    assert re.search(
        rf"│ data\s+│ {re.escape(CUSTOM)}\s+│", invoke("results", "show", str(custom), "--db", sqlite_url).stdout
    )

    dtype = invoke("results", "compare", str(smoke), str(smoke8), "--db", sqlite_url)
    assert dtype.exit_code == 0, dtype.output
    assert re.search(r"│ model dtype\s+│ float32\s+│ bfloat16\s+│", dtype.stdout)
    data = invoke("results", "compare", str(smoke), str(custom), "--db", sqlite_url)
    assert re.search(rf"│ data\s+│ the mnist5k test split\s+│ {re.escape(CUSTOM)}\s+│", data.stdout)
    assert "Same model snapshot" not in data.stdout and "same examples" not in data.stdout.lower()
