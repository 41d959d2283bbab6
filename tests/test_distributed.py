"""Evaluation over several processes (torchrun, gloo, on the CPU): the same numbers as one process,
resumption with another number of processes, and a dying or hanging process that fails the run
(resumable) instead of hanging it. The schedule's balance is checked in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from invarbench.errors import ModelOutputError, ValidationError
from invarbench.evaluation import distributed
from invarbench.evaluation.distributed import RankFailure, batch_cost, ranks_from_environment, reraise, schedule
from invarbench.store import Store
from invarbench.store.codec import encode_floats
from invarbench.suites.schema import load_suite

ENTRY = str(Path(__file__).with_name("dist_entry.py"))
MODEL = "mnist5k/lenet-standard"
WAIT = 600  # seconds: a safety net for a stuck process on a loaded machine, not a timing assertion
TINY_SUITE = """\
name: tiny-dist
version: 1
dataset: mnist5k
description: a few examples and steps, for the tests of distributed evaluation
changelog: ["1: first version"]
include: quick/mnist5k
num_examples: 40
checks: {examples: 4}
measurements:
  pgd_linf: {steps: 3, apgd: {steps: 3, targets: 2}}
  pgd_l2: {steps: 3, apgd: {steps: 3, targets: 2}}
  min_norm: {steps: 3}
  nspgd:
    max_iter: 5
    pairs: {num_pairs: 10}
  path_width:
    points: [0, 3]
    directions: 4
    max_pairs: 5
"""


def _eval(suite: Path, db: Path, *extra: str, processes: int = 1, env: dict | None = None, timeout: float = WAIT):
    args = ["eval", MODEL, "--suite", str(suite), "--batch-size", "4", "--device", "cpu", "--db", f"sqlite:///{db}"]
    launch = [sys.executable, ENTRY]
    if processes > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), ENTRY]
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    # torchrun gives each process one thread; CPU kernels can round differently with another
    # thread count (docs/distributed.md), so the single process gets one thread too.
    environ["OMP_NUM_THREADS"] = "1"
    environ.update(env or {})
    return subprocess.run([*launch, *args, *extra], capture_output=True, text=True, timeout=timeout, env=environ)


def _numbers(db: Path, run_id: int = 1) -> tuple:
    store = Store(f"sqlite:///{db}")
    run = store.get_run(run_id)
    metrics = [(m.name, repr(m.value), repr(m.stderr), repr(m.ci_low), repr(m.ci_high), m.n) for m in run.metrics]
    examples = json.dumps(encode_floats(store.stored_batches(run_id)), sort_keys=True)
    files = sorted((a.name, a.sha256) for a in run.artifacts if a.name != "execution.json")  # how, not what
    out = (run.status, metrics, examples, list(run.flags), files)
    store.close()
    return out


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "tiny.yaml"
    path.write_text(TINY_SUITE)
    return path


@pytest.fixture(scope="module")
def single(suite, tmp_path_factory) -> tuple:
    """One process's numbers."""
    db = tmp_path_factory.mktemp("single") / "runs.db"
    done = _eval(suite, db)
    assert done.returncode == 0, done.stderr
    numbers = _numbers(db)
    assert numbers[0] == "finished" and len(json.loads(numbers[2])) == 10  # ten batches of 4
    return numbers


@pytest.mark.slow
def test_two_processes_give_exactly_the_numbers_of_one(suite, single, tmp_path):
    db = tmp_path / "runs.db"
    done = _eval(suite, db, processes=2)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("clean_accuracy") == 1  # rank 0 alone prints
    assert _numbers(db) == single
    store = Store(f"sqlite:///{db}")
    [execution] = [json.loads(a.data) for a in store.get_run(1).artifacts if a.name == "execution.json"]
    store.close()
    assert execution["processes"] == 2 and execution["batch_size"] == 4


@pytest.mark.slow
def test_a_killed_process_fails_the_run_which_one_process_resumes_to_the_same_numbers(suite, single, tmp_path):
    db = tmp_path / "runs.db"
    killed = _eval(suite, db, processes=2, env={"INVARBENCH_TEST_RANK_FAILS": "1:2:kill"})
    assert killed.returncode != 0
    store = Store(f"sqlite:///{db}")
    [run] = store.list_runs()
    stored = sorted(store.stored_batches(run.id))
    store.close()
    assert run.status == "failed", run.error
    assert "rerun" in run.error and "--resume" in run.error
    # The run did not finish. How many rounds were stored before the kill depends on how fast rank 0 gathers
    # (seen as 0 on a loaded 2-core machine since the run's first batch also measures the probe set).
    assert len(stored) < 10

    resumed = _eval(suite, db, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed run 1: {len(stored)} stored batch(es) reused." in resumed.stdout
    assert _numbers(db) == single


@pytest.mark.slow
def test_a_hanging_process_fails_the_run_after_the_timeout(suite, tmp_path):
    db = tmp_path / "runs.db"
    hung = _eval(suite, db, "--dist-timeout", "0.1", processes=2, env={"INVARBENCH_TEST_RANK_FAILS": "1:2:hang"})
    assert hung.returncode != 0
    assert "did not answer within 0.1 minutes" in hung.stderr
    store = Store(f"sqlite:///{db}")
    [run] = store.list_runs()
    assert run.status == "failed" and "--resume" in run.error
    store.close()


def test_the_schedule_computes_every_batch_once_in_rounds_of_similar_cost():
    suite = load_suite("standard", "cifar10")  # 10,000 examples
    grid = {s: min(s + 250, 10_000) for s in range(0, 10_000, 250)}
    costs = {s: batch_cost(suite, s, e) for s, e in grid.items()}
    # NSPGD walks from sources 0-499, path widths around the first 100 pairs: those batches cost most
    assert costs[0] > costs[250] > costs[500] == costs[9750]
    rounds = schedule(costs, 3)
    dealt = [s for r in rounds for s in r if s is not None]
    assert sorted(dealt) == sorted(grid) and all(len(r) == 3 for r in rounds)
    assert rounds[0][:2] == [0, 250] and rounds[-1][1:] == [None, None]  # 40 batches: the last round has one
    per_rank = [sum(costs[r[k]] for r in rounds if r[k] is not None) for k in range(3)]
    assert max(per_rank) - min(per_rank) <= max(costs.values())
    assert schedule({}, 2) == []


def test_the_environment_names_the_rank(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert ranks_from_environment() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert ranks_from_environment() is None
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValidationError, match="inconsistent"):
        ranks_from_environment()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ranks = ranks_from_environment(2)
    assert (ranks.rank, ranks.world, ranks.local_rank, ranks.timeout_s, ranks.main) == (3, 4, 1, 120, False)
    with pytest.raises(ValidationError, match="--dist-timeout must be a positive"):
        ranks_from_environment(0)


def test_an_error_on_any_rank_is_raised_on_every_rank_as_what_it_was():
    reraise([])
    with pytest.raises(ModelOutputError, match="^rank 1: the model returned NaN"):
        reraise([RankFailure(1, "ModelOutputError", "the model returned NaN", True)])
    with pytest.raises(distributed.DistributedError, match="rank 2 failed: OSError: disk full"):
        reraise([RankFailure(2, "OSError", "disk full", False)])
