"""Leaderboard policy: how a finished run stands, which runs a board ranks, and how it ranks them.

Pure: functions over run values, no database, no files. A run is any object with the attributes of
:class:`invarbench.store.schema.RunRecord` that a function reads (``dataset``, ``data_source``,
``data_digest``, ``examples_effective``, ``suite_name``, ``suite_version``, ``id``, ``model.card_id``, ...),
so that the store's records, the submissions' rule and tests all go through the same rules.

- :func:`run_kind` and :func:`is_full`: a run is :data:`FULL` (ranked) over its suite version's full
  number of examples of the official test split, :data:`SMOKE` over fewer (``--limit``), or
  :data:`CUSTOM_DATA` on other examples (``--data npz:PATH`` with another digest);
- :func:`full_examples_of` and :func:`standings`: where a suite version's full number of examples comes
  from, and each run's :class:`Standing`;
- :func:`best_full_runs` and :func:`newest_unranked`: the rows of the boards, ranked and apart;
- :data:`RANK_METRIC`, :func:`ranking_metric`, :func:`ranking_key` and :func:`shared_ranks`: the order
  of a board and its ranks, shared where the 95 % intervals overlap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# How a finished run stands (see :func:`run_kind`): only full runs are ranked.
FULL = "full"  # over the suite version's full number of examples, on the official test split
SMOKE = "smoke"  # over fewer examples (``--limit``), on the data set's own test split
CUSTOM_DATA = "custom_data"  # on other examples than the official split's (``--data npz:PATH``, another digest)

# Boards rank by this metric (higher is better), then by clean accuracy; a board whose runs lack it
# ranks by clean accuracy alone.
RANK_METRIC = "robust_accuracy_linf"
FALLBACK_METRIC = "clean_accuracy"

# (dataset, suite name, suite version) -> a number of examples
SuiteSizes = Mapping[tuple[str, str, int], int]


@dataclass(frozen=True)
class Standing:
    """A finished run and how it stands: ranked among full runs, or listed apart."""

    run: Any  # a RunRecord, or any object with its attributes
    kind: str  # FULL, SMOKE or CUSTOM_DATA
    full_examples: int | None  # the suite version's full number of examples; None when it cannot be known

    @property
    def ranked(self) -> bool:
        return self.kind == FULL


def run_kind(
    dataset: str, data_source: str | None, data_digest: str | None, examples: int, full_examples: int | None
) -> str:
    """How a finished run stands: :data:`FULL` (ranked), :data:`SMOKE` or :data:`CUSTOM_DATA`.

    ``examples``: how many it evaluated; ``full_examples``: its suite version's full number (None: unknown).
    When the run recorded a data digest and invarbench knows the expected digest of the first
    ``full_examples`` test images of ``dataset`` (:func:`invarbench.data.digests.expected_digest`), the
    digest decides, whatever file the examples came from: a run over ``full_examples`` examples is
    :data:`FULL` when its digest is the expected one and :data:`CUSTOM_DATA` otherwise (other images or
    labels, another order), and a run over fewer is :data:`SMOKE` on the data set's own files and
    :data:`CUSTOM_DATA` on a custom set (``data_source`` not None). Otherwise (no digest recorded, a run stored
    before migration 0006, or none known, e.g. cifar100) the data source decides: a custom set is
    :data:`CUSTOM_DATA`, the data set's own files :data:`FULL` over at least ``full_examples``, else :data:`SMOKE`.
    """
    expected = None
    if data_digest is not None and full_examples is not None:
        from invarbench.data.digests import expected_digest  # only needed for runs that recorded a digest

        expected = expected_digest(dataset, full_examples)
    if expected is not None and examples >= full_examples:
        return FULL if data_digest == expected else CUSTOM_DATA
    if data_source is not None:
        return CUSTOM_DATA
    return FULL if full_examples is not None and examples >= full_examples else SMOKE


def kind_of(run: Any, full_examples: int | None) -> str:
    """:func:`run_kind` of a run (its data set, data source, data digest and examples evaluated)."""
    return run_kind(run.dataset, run.data_source, run.data_digest, run.examples_effective, full_examples)


def is_full(run: Any, full_examples: int | None) -> bool:
    """Whether ``run`` covers the official test split over ``full_examples`` examples (:data:`FULL`), whatever
    its status: the one rule for the leaderboard, the export and the submission status."""
    return kind_of(run, full_examples) == FULL


def full_examples_of(
    run: Any, suite_file_examples: Callable[[str, str, int], int | None], most_asked: Callable[[], SuiteSizes]
) -> int | None:
    """The full number of examples of ``run``'s suite version, in this order: the one the run recorded
    (``suite_num_examples``); ``suite_file_examples(suite name, dataset, suite version)``, the suite file's
    when its current version is the run's; else (an older suite version, a run stored before migration 0004)
    ``most_asked()[(dataset, suite name, suite version)]``, the most examples any run on the test split asked
    for. Returns None when none of them knows."""
    full = run.suite_num_examples
    if full is None:
        full = suite_file_examples(run.suite_name, run.dataset, run.suite_version)
    if full is None:
        full = most_asked().get((run.dataset, run.suite_name, run.suite_version))
    return full


def standings(
    runs: Iterable[Any],
    suite_file_examples: Callable[[str, str, int], int | None],
    most_asked: Callable[[], SuiteSizes],
) -> list[Standing]:
    """How each of ``runs`` stands, in their order (:func:`full_examples_of`, then :func:`kind_of`).
    ``most_asked`` is called at most once, and only when a run needs it."""
    asked: SuiteSizes | None = None

    def once() -> SuiteSizes:
        nonlocal asked
        if asked is None:
            asked = most_asked()
        return asked

    out = []
    for run in runs:
        full = full_examples_of(run, suite_file_examples, once)
        out.append(Standing(run, kind_of(run, full), full))
    return out


def best_full_runs(standings: Sequence[Standing], *, per_suite_version: bool) -> list[Any]:
    """Of the full runs among ``standings``, the newest (highest id) per (model card, data set, suite name[, suite
    version]); without ``per_suite_version``, the newest suite version's newest. Returns them in id order."""
    best: dict[tuple, Any] = {}
    for standing in standings:
        if not standing.ranked:
            continue
        run = standing.run
        key = (run.model.card_id, run.dataset, run.suite_name)
        if per_suite_version:
            key += (run.suite_version,)
        held = best.get(key)
        if held is None or (run.suite_version, run.id) > (held.suite_version, held.id):
            best[key] = run
    return sorted(best.values(), key=lambda r: r.id)


def newest_unranked(standings: Sequence[Standing]) -> list[Standing]:
    """Of the smoke and custom-data runs among ``standings``, the newest suite version's newest (highest id) per
    (model card, data set, suite name, data source). Returns their standings in id order."""
    best: dict[tuple, Standing] = {}
    for standing in standings:
        if standing.ranked:
            continue
        run = standing.run
        key = (run.model.card_id, run.dataset, run.suite_name, run.data_source)
        held = best.get(key)
        if held is None or (run.suite_version, run.id) > (held.run.suite_version, held.run.id):
            best[key] = standing
    return sorted(best.values(), key=lambda st: st.run.id)


def ranking_metric(metric_names: Iterable[Iterable[str]]) -> str:
    """The metric a board ranks by, given each ranked row's metric names: :data:`RANK_METRIC` when any row has
    it, else :data:`FALLBACK_METRIC` (clean accuracy)."""
    return RANK_METRIC if any(RANK_METRIC in names for names in metric_names) else FALLBACK_METRIC


def ranking_key(values: Mapping[str, float | None], card_id: str, metric: str) -> tuple[float, float, str]:
    """The sort key of a ranked row, best first: ``metric`` descending, then clean accuracy descending, then the
    card id; an absent or NaN value sorts last."""

    def value(name: str) -> float:
        v = values.get(name)
        return float("-inf") if v is None or math.isnan(v) else v

    return (-value(metric), -value(FALLBACK_METRIC), card_id)


def shared_ranks(intervals: Sequence[tuple[float | None, float | None] | None]) -> list[int]:
    """Ranks honest about uncertainty, for rows sorted best first given as their 95 % intervals ``(low, high)``
    of the ranking metric (None: the row lacks the metric). A row's rank is one plus the number of rows whose
    interval lies entirely above its own, so rows whose intervals overlap share a rank; a row without the
    metric or its upper bound gets the rank of its position."""
    ranks = []
    for i, interval in enumerate(intervals):
        if interval is None or interval[1] is None:
            ranks.append(i + 1)
            continue
        high = interval[1]
        above = sum(1 for other in intervals if other is not None and other[0] is not None and other[0] > high)
        ranks.append(above + 1)
    return ranks
