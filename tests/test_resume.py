"""Runs that survive a crash: killed, interrupted or failed evaluations are resumed, and end
with exactly the numbers of an uninterrupted run. Real processes, real signals, the bundled
reference model on the quick suite."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_helpers import db_url  # fixture

from invarbench.cards import resolve_card
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.store import Store, probes
from invarbench.store.codec import encode_floats

MODEL = "mnist5k/lenet-standard"
LIMIT, BATCH = 100, 10  # ten batches of a few milliseconds each
OPTIONS = EvalOptions(suite="quick", limit=LIMIT, batch_size=BATCH, device="cpu")
# The code version is part of what a resumed run must match. Commits can land in this checkout
# while the tests run, so every evaluation here reports one fixed commit.
COMMIT = "0" * 40
CLI = [
    sys.executable,
    "-c",
    "import invarbench.store.probes as p; p.git_commit = lambda: "
    + repr(COMMIT)
    + "; from invarbench.cli import main; main()",
]
WAIT = 600  # seconds: a safety net for a stuck process on a loaded machine, not a timing assertion
EVAL_ARGS = ["eval", MODEL, "--suite", "quick", "--limit", str(LIMIT), "--batch-size", str(BATCH), "--device", "cpu"]


class Stop(Exception):
    pass


@pytest.fixture(autouse=True)
def _fixed_commit(monkeypatch):
    monkeypatch.setattr(probes, "git_commit", lambda: COMMIT)


def _stopping_after(batches: int, exc: type[BaseException]):
    """A progress reporter that raises ``exc`` once ``batches`` batches are done (and stored)."""

    def factory(_description: str, _total: int):
        done = [0]

        def advance(n: int, note: str | None = None) -> None:
            if n == 0:  # a note on the work in progress, not a finished batch
                return
            done[0] += 1
            if done[0] == batches:
                raise exc("stopped by the test")

        return advance

    return factory


def _numbers(store: Store, run_id: int) -> tuple:
    """Everything a run's result is: its metrics (every field), every per-example value, as exact
    text, and its files (NSPGD's image strips, by name and sha256)."""
    run = store.get_run(run_id)
    metrics = [(m.name, repr(m.value), repr(m.stderr), repr(m.ci_low), repr(m.ci_high), m.n) for m in run.metrics]
    examples = json.dumps(encode_floats(store.stored_batches(run_id)), sort_keys=True)
    files = sorted((a.name, a.sha256) for a in run.artifacts)
    return metrics, examples, list(run.flags), files


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple:
    """An uninterrupted run's numbers."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(probes, "git_commit", lambda: COMMIT)
        return _reference(tmp_path_factory)


def _reference(tmp_path_factory) -> tuple:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('reference') / 'ref.db'}")
    outcome = evaluate(resolve_card(MODEL), store, OPTIONS)
    assert outcome.examples == LIMIT and not outcome.resumed
    numbers = _numbers(store, outcome.run_id)
    assert len(numbers[0]) >= 2 and numbers[0][0][0] == "clean_accuracy"
    strips = [name for name, _ in numbers[3] if name.startswith("nspgd-strip-")]
    assert strips[:2] == ["nspgd-strip-00009.json", "nspgd-strip-00009.png"]
    return numbers


def test_a_failed_run_is_recorded_and_resumed_to_the_same_numbers(db_url, reference):
    store = Store(db_url)
    ref = resolve_card(MODEL)
    with pytest.raises(Stop):
        evaluate(ref, store, OPTIONS, progress=_stopping_after(3, Stop))
    [failed] = store.list_runs()
    assert (failed.status, failed.error) == ("failed", "Stop: stopped by the test")
    assert sorted(store.stored_batches(failed.id)) == [0, 10, 20]

    outcome = evaluate(ref, store, EvalOptions(**{**OPTIONS.__dict__, "resume": True}))
    assert (outcome.run_id, outcome.resumed, outcome.batches_reused) == (failed.id, True, 3)
    run = store.get_run(failed.id)
    assert (run.status, run.error, run.attempts) == ("finished", None, 2)
    assert run.duration_s > 0 and run.peak_memory_bytes > 0
    assert _numbers(store, failed.id) == reference
    assert len(store.list_runs()) == 1


def test_ctrl_c_marks_the_run_failed_with_how_to_resume(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(KeyboardInterrupt):
        evaluate(resolve_card(MODEL), store, OPTIONS, progress=_stopping_after(2, KeyboardInterrupt))
    [run] = store.list_runs()
    assert run.status == "failed"
    assert run.error == (
        "interrupted (KeyboardInterrupt): the completed batches are stored; continue with "
        "'invarbench eval mnist5k/lenet-standard --resume' and the same options"
    )


def test_without_resume_a_new_run_starts_and_resume_needs_matching_options(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    ref = resolve_card(MODEL)
    with pytest.raises(Stop):
        evaluate(ref, store, OPTIONS, progress=_stopping_after(1, Stop))
    assert evaluate(ref, store, OPTIONS).run_id == 2  # no --resume: a new run
    other_seed = evaluate(ref, store, EvalOptions(**{**OPTIONS.__dict__, "seed": 5, "resume": True}))
    assert (other_seed.run_id, other_seed.resumed) == (3, False)  # nothing unfinished with seed 5
    assert [r.status for r in store.list_runs()] == ["failed", "finished", "finished"]


def _hold_write_lock_once_stored(db_file: Path, batches: int, proc: subprocess.Popen) -> sqlite3.Connection:
    """Wait until ``proc`` has committed ``batches`` batches, then hold SQLite's write lock.

    While the lock is held the evaluation cannot commit anything, so what is stored when the
    test signals it is exactly what the test saw.
    """
    con = sqlite3.connect(db_file, timeout=30, isolation_level=None)
    deadline = time.monotonic() + WAIT
    while True:
        assert proc.poll() is None, f"the evaluation ended before it was stopped: {proc.communicate()}"
        assert time.monotonic() < deadline, "the evaluation stored nothing in time"
        con.execute("BEGIN IMMEDIATE")
        stored = con.execute("SELECT COUNT(DISTINCT batch_start) FROM example_results").fetchone()[0]
        if stored >= batches:
            assert stored < LIMIT // BATCH, "every batch was stored before the test could stop the run"
            return con
        con.execute("ROLLBACK")
        time.sleep(0.003)


def test_a_killed_evaluation_resumes_to_exactly_the_numbers_of_an_uninterrupted_one(tmp_path, reference):
    db_file = tmp_path / "results.db"
    url = f"sqlite:///{db_file}"
    Store(url).close()  # the tables exist before the evaluation starts
    args = [*CLI, *EVAL_ARGS, "--db", url]

    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = _hold_write_lock_once_stored(db_file, 2, first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=WAIT)
    lock.execute("ROLLBACK")
    store = Store(url)
    [killed] = store.list_runs()
    kept = sorted(store.stored_batches(killed.id))
    assert killed.status == "running" and 2 <= len(kept) < LIMIT // BATCH  # nothing could mark it

    # Resume, then Ctrl-C the resumed process: it records the interruption and says how to go on.
    # Ctrl-C as a terminal sends it, also when the tests themselves run in the background, whose
    # children inherit an ignored SIGINT (a non-interactive shell's '&').
    second = subprocess.Popen(
        [*args, "--resume"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lock = _hold_write_lock_once_stored(db_file, len(kept) + 1, second)
    second.send_signal(signal.SIGINT)
    lock.execute("ROLLBACK")
    _, err = second.communicate(timeout=WAIT)
    assert second.returncode == 130, err
    assert (
        "Interrupted: the completed batches are stored; continue with 'invarbench eval "
        "mnist5k/lenet-standard --resume' and the same options."
    ) in err
    interrupted = store.get_run(killed.id)
    assert interrupted.status == "failed" and interrupted.error.startswith("interrupted (KeyboardInterrupt)")
    assert len(store.stored_batches(killed.id)) > len(kept)

    third = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=WAIT)
    assert third.returncode == 0, third.stderr
    assert f"Resumed run {killed.id}:" in third.stdout
    [run] = store.list_runs()
    assert (run.id, run.status, run.attempts) == (killed.id, "finished", 3)
    assert _numbers(store, run.id) == reference


def test_two_evaluations_writing_to_one_sqlite_file_both_finish(tmp_path, reference):
    db_file = tmp_path / "results.db"
    url = f"sqlite:///{db_file}"
    Store(url).close()
    lock = sqlite3.connect(db_file, timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # both start, then wait for the lock, then write at the same time
    procs = [
        subprocess.Popen([*CLI, *EVAL_ARGS, "--db", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(2)
    lock.execute("ROLLBACK")
    outs = [p.communicate(timeout=WAIT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = Store(url)
    runs = store.list_runs()
    assert [r.status for r in runs] == ["finished", "finished"]
    for run in runs:
        assert _numbers(store, run.id) == reference
