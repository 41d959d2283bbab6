"""The leaderboard policy (invarbench.leaderboard_policy), as a contract over plain values: which run is full,
how a run stands when its suite's size must be looked up, which runs the boards rank and list apart, the
ranking metric and order, and ranks shared where the 95 % intervals overlap. No database: the same rules
the store, the export, the submission status and the site call."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from invarbench import leaderboard_policy as policy
from invarbench.data.digests import EXPECTED_DIGESTS
from invarbench.leaderboard_policy import CUSTOM_DATA, FULL, SMOKE, Standing

MNIST_200 = EXPECTED_DIGESTS["mnist"][200]


def run(i=1, *, card="mnist/m", suite="standard", version=1, examples=200, source=None, digest=None, recorded=200):
    """A finished run's values, on mnist, whose suite version records 200 examples (``recorded``)."""
    return NS(
        id=i,
        model=NS(card_id=card),
        dataset="mnist",
        suite_name=suite,
        suite_version=version,
        suite_num_examples=recorded,
        examples_effective=examples,
        data_source=source,
        data_digest=digest,
    )


@pytest.mark.parametrize(
    ("case", "values", "kind"),
    [
        ("full, no digest recorded", dict(examples=200), FULL),
        ("full, the expected digest", dict(examples=200, digest=MNIST_200), FULL),
        ("more examples than the suite's", dict(examples=500), FULL),
        ("--limit", dict(examples=50), SMOKE),
        ("--limit, a digest of its own", dict(examples=50, digest="v1:" + "0" * 64), SMOKE),
        ("the own files, another digest", dict(examples=200, digest="v1:" + "0" * 64), CUSTOM_DATA),
        ("custom data, no digest", dict(examples=200, source="npz:/x.npz"), CUSTOM_DATA),
        ("custom data, another digest", dict(examples=200, source="npz:/x.npz", digest="v1:" + "1" * 64), CUSTOM_DATA),
        ("a prefix copy of the split", dict(examples=200, source="npz:/copy.npz", digest=MNIST_200), FULL),
        ("a prefix copy, fewer examples", dict(examples=50, source="npz:/copy.npz", digest=MNIST_200), CUSTOM_DATA),
        ("the suite's size unknown", dict(examples=200, recorded=None), SMOKE),
    ],
)
def test_is_full_and_the_kind_of_a_run(case, values, kind):
    r = run(**values)
    full = r.suite_num_examples
    assert policy.kind_of(r, full) == kind, case
    assert policy.is_full(r, full) is (kind == FULL), case
    assert policy.run_kind(r.dataset, r.data_source, r.data_digest, r.examples_effective, full) == kind


def test_without_a_known_digest_the_data_source_decides():
    # cifar100 has no expected digest: any digest on its own files is full, a custom set never is.
    other = "v1:" + "2" * 64
    assert policy.run_kind("cifar100", None, other, 1000, 1000) == FULL
    assert policy.run_kind("cifar100", "npz:/x.npz", other, 1000, 1000) == CUSTOM_DATA
    assert policy.run_kind("cifar100", None, other, 999, 1000) == SMOKE


def test_the_full_number_of_examples_is_recorded_then_the_suite_files_then_the_most_asked():
    asked_calls = []

    def most_asked():
        asked_calls.append(1)
        return {("mnist", "old", 1): 300}

    def suite_file(name, dataset, version):
        return 200 if (name, dataset, version) == ("standard", "mnist", 2) else None

    recorded = run(1, recorded=50, examples=50)  # recorded wins, even where the suite file says otherwise
    from_file = run(2, version=2, recorded=None, examples=200)
    from_asked = run(3, suite="old", recorded=None, examples=250)
    unknown = run(4, suite="lost", recorded=None, examples=1000)
    got = policy.standings([recorded, from_file, from_asked, unknown], suite_file, most_asked)
    assert [(st.run.id, st.kind, st.full_examples) for st in got] == [
        (1, FULL, 50),
        (2, FULL, 200),
        (3, SMOKE, 300),
        (4, SMOKE, None),
    ]
    assert len(asked_calls) == 1  # looked up once, for the runs that need it
    policy.standings([recorded, from_file], suite_file, most_asked)
    assert len(asked_calls) == 1  # and not at all when none does


def test_best_full_runs_and_newest_unranked():
    a1, a2 = run(1, card="mnist/a"), run(2, card="mnist/a")  # a newer full run supersedes
    a_v2 = run(3, card="mnist/a", version=2)  # another suite version
    b = run(4, card="mnist/b")
    b_smoke_old = run(5, card="mnist/b", examples=10)
    b_smoke = run(6, card="mnist/b", examples=20)
    b_custom = run(7, card="mnist/b", source="npz:/x.npz")
    b_smoke_v0 = run(8, card="mnist/b", examples=30, version=0)  # newer id, older suite version
    kinds = {1: FULL, 2: FULL, 3: FULL, 4: FULL, 5: SMOKE, 6: SMOKE, 7: CUSTOM_DATA, 8: SMOKE}
    runs = [a1, a2, a_v2, b, b_smoke_old, b_smoke, b_custom, b_smoke_v0]
    standings = [Standing(r, kinds[r.id], 200) for r in runs]
    assert [r.id for r in policy.best_full_runs(standings, per_suite_version=True)] == [2, 3, 4]
    assert [r.id for r in policy.best_full_runs(standings, per_suite_version=False)] == [3, 4]
    assert [st.run.id for st in policy.newest_unranked(standings)] == [6, 7]
    # A smoke or custom-data run never stands in for a missing full run.
    assert policy.best_full_runs([Standing(b_smoke, SMOKE, 200)], per_suite_version=True) == []


def test_the_ranking_metric_and_order():
    assert policy.ranking_metric([{"clean_accuracy"}, {"clean_accuracy", policy.RANK_METRIC}]) == policy.RANK_METRIC
    assert policy.ranking_metric([{"clean_accuracy"}]) == "clean_accuracy"
    assert policy.ranking_metric([]) == "clean_accuracy"
    rows = {
        "c": {policy.RANK_METRIC: 0.5, "clean_accuracy": 0.9},
        "a": {policy.RANK_METRIC: 0.5, "clean_accuracy": 0.9},  # a tie: by card id
        "b": {policy.RANK_METRIC: 0.5, "clean_accuracy": 0.95},  # clean accuracy breaks the tie
        "d": {policy.RANK_METRIC: 0.7, "clean_accuracy": 0.1},
        "nan": {policy.RANK_METRIC: math.nan, "clean_accuracy": 0.99},  # NaN and absent sort last
        "none": {"clean_accuracy": 1.0},
    }
    order = sorted(rows, key=lambda card: policy.ranking_key(rows[card], card, policy.RANK_METRIC))
    assert order == ["d", "b", "a", "c", "none", "nan"]


def test_shared_ranks_follow_the_overlap_of_the_intervals():
    # Sorted best first. A: [0.8, 0.9]; B: [0.75, 0.85] overlaps A, so both rank 1; C: [0.6, 0.78] lies below
    # A only (0.8 > 0.78) and overlaps B: rank 2; D: [0.5, 0.7] lies below A and B, overlaps C: rank 3.
    intervals = [(0.8, 0.9), (0.75, 0.85), (0.6, 0.78), (0.5, 0.7)]
    assert policy.shared_ranks(intervals) == [1, 1, 2, 3]
    # Disjoint intervals: the ranks of the positions; all overlapping: one shared rank.
    assert policy.shared_ranks([(0.9, 0.95), (0.7, 0.8), (0.1, 0.2)]) == [1, 2, 3]
    assert policy.shared_ranks([(0.5, 0.9), (0.4, 0.8), (0.45, 0.6)]) == [1, 1, 1]
    # A row without the metric, or without an upper bound, keeps its position; it ranks nobody below it.
    assert policy.shared_ranks([(0.8, 0.9), None, (0.1, None), (0.1, 0.2)]) == [1, 2, 3, 2]
    assert policy.shared_ranks([]) == []


def test_the_policy_is_pure():
    """No database, no files, no web: the module imports the standard library and, for the expected data
    digests, invarbench.data.digests (inside run_kind), nothing else (imports inside functions count)."""
    import ast
    import sys

    source = Path(policy.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside == {"invarbench.data.digests"}, outside
