"""The store on SQLite and (when a server is reachable) PostgreSQL: the same tests on both."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from store_helpers import (  # fixtures
    TOY_SETTINGS,
    add_model,
    batch_values,
    db_url,
    metric,
    provenance,
    settings_fields,
    sqlite_url,
)

from invarbench.errors import InvarbenchError, NotFoundError, ValidationError
from invarbench.store import Store
from invarbench.store.codec import encode_floats
from invarbench.store.runs import process_owner
from invarbench.store.schema import ExampleRecord, RunRecord


def same(a, b) -> bool:  # JSON-ready values, NaN included
    return json.dumps(encode_floats(a), sort_keys=True) == json.dumps(encode_floats(b), sort_keys=True)


def test_a_run_round_trips_every_number_exactly(db_url):
    store = Store(db_url)
    run_id = store.start_run(add_model(store), provenance())
    stored = {start: batch_values(start) for start in (0, 2, 4)}
    stored[4]["pgd_linf"]["distance"][0] = float("nan")
    for start, values in stored.items():
        store.add_examples(run_id, start, values, duration_s=1.5, peak_memory_bytes=2**33)
    metrics = [
        metric("clean_accuracy", 2 / 3, 0.19245008972987526, (0.2999, 0.9032)),
        metric("median_min_l2_distance", float("inf")),
        metric("ece", float("nan"), float("nan")),
    ]
    store.finish_run(run_id, metrics, ["flag_a"], duration_s=3.25, peak_memory_bytes=2**32)

    fresh = Store(db_url)  # read back through a new engine: nothing comes from a cache
    assert same(fresh.stored_batches(run_id), stored)
    run = fresh.get_run(run_id)
    assert (run.status, run.flags, run.duration_s, run.peak_memory_bytes) == ("finished", ["flag_a"], 3.25, 2**33)
    got = {m.name: m for m in run.metrics}
    assert got["clean_accuracy"].value == 2 / 3 and got["clean_accuracy"].stderr == 0.19245008972987526
    assert (got["clean_accuracy"].ci_low, got["clean_accuracy"].ci_high) == (0.2999, 0.9032)
    assert got["median_min_l2_distance"].value == math.inf
    assert math.isnan(got["ece"].value) and got["ece"].stderr is None
    assert run.finished_at is not None and run.attempts == 1 and len(run.uid) == 36


def test_a_batch_is_stored_whole_or_not_at_all(db_url):
    store = Store(db_url)
    run_id = store.start_run(add_model(store), provenance())
    store.add_examples(run_id, 0, batch_values(0))
    with pytest.raises(InvarbenchError, match="batch at example 0 of run 1 is already stored"):
        store.add_examples(run_id, 0, {"new_measurement": {"x": [1, 2]}, "clean": {"label": [0, 1]}})
    with pytest.raises(Exception):  # noqa: B017 - a value JSON cannot hold fails the whole batch (a driver error)
        store.add_examples(run_id, 2, {"clean": {"label": [1, 2]}, "pgd_linf": {"x": [object()]}})
    with store.session() as s:
        rows = s.execute(
            select(ExampleRecord.batch_start, ExampleRecord.measurement).order_by(
                ExampleRecord.batch_start, ExampleRecord.measurement
            )
        ).all()
    assert rows == [(0, "clean"), (0, "pgd_linf")]


def test_the_same_model_snapshot_is_stored_once(db_url):
    store = Store(db_url)
    assert add_model(store) == add_model(store)
    assert add_model(store, card_sha256="c" * 64) != add_model(store)


def test_resume_takes_over_only_a_matching_unfinished_run(db_url):
    store = Store(db_url)
    model_id = add_model(store)
    finished = store.start_run(model_id, provenance())
    store.finish_run(finished, [metric("clean_accuracy", 0.5)], [])
    assert store.resume_run(model_id, provenance()) is None  # finished runs are never resumed

    failed = store.start_run(model_id, provenance())
    store.add_examples(failed, 0, batch_values(0), duration_s=2.0, peak_memory_bytes=100)
    store.fail_run(failed, "RuntimeError: boom", duration_s=2.5)
    assert store.get_run(failed).error == "RuntimeError: boom"
    assert store.resume_run(model_id, provenance(seed=1)) is None
    assert store.resume_run(model_id, provenance(batch_size=3)) is None
    assert store.resume_run(model_id, provenance(device="cuda:NVIDIA H100")) is None
    assert store.resume_run(model_id, provenance(suite_settings_hash="9" * 64)) is None
    assert store.resume_run(add_model(store, card_sha256="c" * 64), provenance()) is None

    resumed = store.resume_run(model_id, provenance())
    assert resumed is not None and resumed.run_id == failed
    assert same(resumed.batches, {0: batch_values(0)})
    assert (resumed.duration_s, resumed.peak_memory_bytes, resumed.attempts) == (2.5, 100, 2)
    run = store.get_run(failed)
    assert (run.status, run.error, run.owner, run.attempts) == ("running", None, process_owner(), 2)


def test_a_run_stores_its_suite_settings_exactly_and_resumes_only_with_the_same_hash(db_url):
    store = Store(db_url)
    model_id = add_model(store)
    failed = store.start_run(model_id, provenance(**settings_fields()))
    store.add_examples(failed, 0, batch_values(0))
    store.fail_run(failed, "RuntimeError: boom")
    run = Store(db_url).get_run(failed)
    assert same(run.suite_settings, TOY_SETTINGS) and list(run.suite_settings) == list(TOY_SETTINGS)
    assert run.suite_settings["measurements"]["pgd_linf"]["eps"] == 0.1 + 0.2
    assert run.suite_settings_hash == settings_fields()["suite_settings_hash"]

    more_steps = {
        **TOY_SETTINGS,
        "measurements": {"pgd_linf": {**TOY_SETTINGS["measurements"]["pgd_linf"], "steps": 20}},
    }
    assert store.resume_run(model_id, provenance(**settings_fields(more_steps))) is None
    assert store.resume_run(model_id, provenance()) is None  # a run that records no settings
    # the hash is what is matched: the settings themselves are not compared (PostgreSQL's json has no equality)
    resumed = store.resume_run(model_id, provenance(suite_settings=None, suite_settings_hash=run.suite_settings_hash))
    assert resumed is not None and resumed.run_id == failed
    assert store.get_run(failed).suite_settings == run.suite_settings  # a resume leaves what the run recorded


def test_resume_leaves_a_run_whose_process_is_alive(db_url, monkeypatch):
    store = Store(db_url)
    model_id = add_model(store)
    run_id = store.start_run(model_id, provenance())
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with store.session() as s:
            host = process_owner().rpartition(":")[0]
            s.get(RunRecord, run_id).owner = f"{host}:{helper.pid}"
        assert store.resume_run(model_id, provenance()) is None  # its process still runs
    finally:
        helper.kill()
        helper.wait()
    resumed = store.resume_run(model_id, provenance())  # killed: now it can be taken over
    assert resumed is not None and resumed.run_id == run_id


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux's /proc")
def test_resume_takes_over_a_run_whose_pid_now_belongs_to_another_process(db_url):
    """A restarted machine or container keeps its host name and hands out low pids again: a live
    process with the owner's pid but another start time is not the owner, so the run is resumed."""
    from invarbench.store.runs import _process_start

    store = Store(db_url)
    model_id = add_model(store)
    run_id = store.start_run(model_id, provenance())
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host = process_owner().partition(":")[0]
        start = _process_start(helper.pid)
        boot, _, ticks = start.partition(".")
        with store.session() as s:
            s.get(RunRecord, run_id).owner = f"{host}:{helper.pid}@{start}"
        assert store.resume_run(model_id, provenance()) is None  # the owner itself still runs
        for other in (f"{boot}.{int(ticks) - 1}", f"{'0' * 8}.{ticks}"):  # earlier in this boot; another boot
            with store.session() as s:
                s.get(RunRecord, run_id).owner = f"{host}:{helper.pid}@{other}"
            resumed = store.resume_run(model_id, provenance())
            assert resumed is not None and resumed.run_id == run_id, other
            with store.session() as s:
                s.get(RunRecord, run_id).status = "running"
    finally:
        helper.kill()
        helper.wait()


def test_latest_finished_runs_are_the_leaderboard_rows(db_url):
    store = Store(db_url)
    model_id = add_model(store)
    old = store.start_run(model_id, provenance())
    store.finish_run(old, [metric("clean_accuracy", 0.5)], [])
    new = store.start_run(model_id, provenance(seed=3))
    store.finish_run(new, [metric("clean_accuracy", 0.75)], [])
    store.start_run(model_id, provenance())  # running: not on the leaderboard
    other = store.start_run(model_id, provenance(suite_name="standard"))
    store.fail_run(other, "boom")
    rows = store.latest_finished_runs()
    assert [(r.id, r.model.card_id, [m.value for m in r.metrics]) for r in rows] == [(new, "toy/model", [0.75])]


def test_a_smoke_run_or_a_custom_data_set_never_replaces_a_full_leaderboard_run(db_url):
    store = Store(db_url)
    model_id = add_model(store)
    full = store.start_run(model_id, provenance())
    store.finish_run(full, [metric("clean_accuracy", 0.5)], [])
    smoke = store.start_run(model_id, provenance(examples_requested=2, examples_effective=2))
    store.finish_run(smoke, [metric("clean_accuracy", 1.0, n=2)], [])
    custom = store.start_run(model_id, provenance(data_source="npz:/tmp/mine.npz sha256:" + "a" * 64))
    store.finish_run(custom, [metric("clean_accuracy", 1.0)], [])
    assert [r.id for r in store.latest_finished_runs()] == [full]
    assert [r.id for r in store.leaderboard_runs()] == [full]
    assert [(st.run.id, st.kind) for st in store.unranked_runs()] == [(smoke, "smoke"), (custom, "custom_data")]
    # a newer full run takes over
    again = store.start_run(model_id, provenance(seed=1))
    store.finish_run(again, [metric("clean_accuracy", 0.6)], [])
    assert [r.id for r in store.latest_finished_runs()] == [again]
    # a newer suite version's run over fewer examples than asked for is no full run: it is not ranked
    short = store.start_run(model_id, provenance(suite_version=2, examples_effective=2))
    store.finish_run(short, [metric("clean_accuracy", 0.7, n=2)], [])
    assert [r.id for r in store.latest_finished_runs()] == [again]
    assert [st.run.id for st in store.unranked_runs()] == [custom, short]  # the newest suite version's smoke run
    # a full run of the newer suite version takes over the leaderboard row
    v2 = store.start_run(model_id, provenance(suite_version=2, seed=5))
    store.finish_run(v2, [metric("clean_accuracy", 0.7)], [])
    assert [r.id for r in store.latest_finished_runs()] == [v2]
    assert [r.id for r in store.leaderboard_runs()] == [again, v2]  # per suite version
    # the custom run stays in the store, with where its images came from
    assert store.get_run(custom).data_source.startswith("npz:/tmp/mine.npz sha256:")


def test_artifacts_are_stored_replaced_and_validated(db_url):
    store = Store(db_url)
    run_id = store.start_run(add_model(store), provenance())
    store.add_artifact(run_id, "strip.png", b"\x89PNG one")
    store.add_artifact(run_id, "strip.png", b"\x89PNG two")
    [artifact] = store.get_run(run_id).artifacts
    assert (artifact.name, artifact.media_type, artifact.data, artifact.size_bytes) == (
        "strip.png",
        "image/png",
        b"\x89PNG two",
        8,
    )
    with pytest.raises(ValidationError, match="artifact name '../x.png' must be a plain file name"):
        store.add_artifact(run_id, "../x.png", b"")
    with pytest.raises(NotFoundError, match="run 99 not found"):
        store.add_artifact(99, "a.png", b"")


def test_unknown_run_names_the_database_and_the_fix(sqlite_url):
    with pytest.raises(NotFoundError, match=r"run 7 not found in sqlite:///.*store.db: see 'invarbench results list'"):
        Store(sqlite_url).get_run(7)


def test_bad_urls_give_one_clear_error(tmp_path):
    with pytest.raises(ValidationError, match="invalid database URL 'not a url': use sqlite:///PATH or postgresql://"):
        Store("not a url")
    with pytest.raises(InvarbenchError, match=r"cannot use database 'postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x'"):
        Store("postgresql://u:secret@127.0.0.1:1/x")  # the password is never shown


def test_sqlite_runs_in_wal_mode(sqlite_url):
    store = Store(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


WRITER = """
import sys, time
from pathlib import Path
from types import SimpleNamespace
from invarbench.store.db import Store
from invarbench.store.provenance import Provenance
url, tag, batches, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
(sync / f"ready-{tag}").touch()
while not (sync / "go").exists():
    time.sleep(0.005)
store = Store(url)  # both open a new database at once: the migrations must not race
model_id = store.upsert_model(card_id="toy/model", name="m", dataset="toy", card_yaml="", card_sha256="a" * 64,
                              file_sha256="b" * 64, hub_repo=None, hub_revision=None, training_method="standard")
prov = Provenance(suite_name="quick", suite_version=1, dataset="toy", invarbench_version="0", git_commit=None,
                  torch_version="0", device="cpu", seed=tag, batch_size=1, examples_requested=batches,
                  examples_effective=batches, suite_num_examples=batches, data_source=None, model_dtype="float32",
                  suite_settings={"seed": 0, "eps": 0.1 + 0.2}, suite_settings_hash="5" * 64, data_digest=None)
run_id = store.start_run(model_id, prov)
for start in range(batches):
    store.add_examples(run_id, start, {"a": {"x": [tag + start / 7]}, "b": {"y": [start]}}, duration_s=float(start))
store.finish_run(run_id, [SimpleNamespace(name="total", value=float(batches), stderr=None, ci_low=None,
                                          ci_high=None, n=batches)], [])
print(run_id)
"""


def test_two_processes_writing_at_once_both_keep_everything(db_url, tmp_path):
    batches = 60
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, db_url, str(tag), str(batches), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in (1, 2)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{tag}").exists() for tag in (1, 2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), procs[0].stderr.read()
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = Store(db_url)
    runs = store.list_runs()
    assert sorted(r.seed for r in runs) == [1, 2] and {r.status for r in runs} == {"finished"}
    assert len({r.model_id for r in runs}) == 1  # the shared model snapshot was added once
    for run in runs:
        values = store.stored_batches(run.id)
        assert sorted(values) == list(range(batches))
        assert [values[s]["a"]["x"][0] for s in range(batches)] == [run.seed + s / 7 for s in range(batches)]
        assert [m.value for m in run.metrics] == [float(batches)]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(ExampleRecord)) == 2 * 2 * batches


def test_the_default_database_is_a_sqlite_file_under_xdg_data_home():
    store = Store()
    assert store.url == f"sqlite:///{Path(os.environ['XDG_DATA_HOME']) / 'invarbench' / 'invarbench.db'}"
    assert store.list_runs() == []


def test_the_model_snapshot_is_defined_once():
    """The snapshot's fields are the model table's columns and the results document's ``model`` keys, in the
    document's order; storing one and reading it back gives it again."""
    from invarbench.store.documents import ModelDoc
    from invarbench.store.schema import MODEL_SNAPSHOT_FIELDS, ModelRecord, ModelSnapshot

    assert set(MODEL_SNAPSHOT_FIELDS) == {c.name for c in ModelRecord.__table__.columns} - {"id"}
    assert tuple(ModelDoc.model_fields) == MODEL_SNAPSHOT_FIELDS
    snapshot = ModelSnapshot("toy/m", "m", "toy", "standard", "a" * 64, "b" * 64, "org/m", "c" * 40, "id: toy/m\n")
    assert ModelSnapshot.of(snapshot.record()) == snapshot
