"""Evaluating every registered card that is not evaluated yet (``invarbench eval --pending``).

The cards to run are those whose status (:mod:`invarbench.submissions`) with the current version of the
suite is not ``evaluated``: pending and failed ones. They run one after another; a card that fails
(it does not load, its model fails a check, a measurement stops on NaN logits) is recorded with its error
and the next one runs. Ctrl-C stops the whole loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from invarbench.cards.catalog import card_paths, default_cards_dir, load_card
from invarbench.errors import InvarbenchError
from invarbench.evaluation.runner import EvalOptions, EvalOutcome, describe_failure, evaluate
from invarbench.progress import ProgressFactory, no_progress
from invarbench.store.db import Store
from invarbench.submissions import EVALUATED, derive_statuses, suite_targets


@dataclass(frozen=True)
class PendingResult:
    """One card of ``eval --pending``: its outcome, or the one-line error it failed with."""

    card: str  # the card id, or its path when it does not load
    outcome: EvalOutcome | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PendingPlan:
    """What ``eval --pending`` will run: the card paths not evaluated with the suite, and those already
    evaluated (card id, run id), for the report."""

    todo: list[Path]
    evaluated: list[tuple[str, int]]
    broken: list[tuple[Path, str]]  # cards that do not load: each fails without running


def plan_pending(store: Store, suite: str, cards_dir: Path | None = None) -> PendingPlan:
    """Which cards under ``cards_dir`` have no finished full run for the current version of ``suite``."""
    root = cards_dir or default_cards_dir()
    refs, broken = [], []
    for path in card_paths(root):
        try:
            refs.append(load_card(path, check_location=True, cards_dir=root))
        except InvarbenchError as exc:
            broken.append((path, str(exc)))
    targets = suite_targets(suite, [r.card.dataset for r in refs]) if refs else {}
    ids = {r.card.id for r in refs}
    statuses = derive_statuses(refs, [r for r in store.list_runs() if r.model.card_id in ids], targets)
    done = [(s.card_id, s.run_id) for s in statuses if s.state == EVALUATED]
    todo = [s.path for s in statuses if s.state != EVALUATED]
    return PendingPlan(todo=todo, evaluated=done, broken=broken)


def evaluate_pending(
    store: Store,
    options: EvalOptions,
    plan: PendingPlan,
    progress: ProgressFactory = no_progress,
    on_result: Callable[[PendingResult], None] | None = None,
) -> list[PendingResult]:
    """Evaluate each card of ``plan.todo`` with ``options`` (``resume`` is forced on: an interrupted run of
    a card is continued), one after another, continuing past failures; cards that do not load fail first.
    ``on_result`` is called after each card. KeyboardInterrupt stops the loop and propagates."""
    options = dataclasses.replace(options, resume=True)
    results = []
    for path, error in plan.broken:
        results.append(PendingResult(card=str(path), error=error))
        if on_result:
            on_result(results[-1])
    for path in plan.todo:
        card = str(path)
        try:
            ref = load_card(path)
            card = ref.card.id
            result = PendingResult(card=card, outcome=evaluate(ref, store, options, progress))
        except Exception as exc:  # noqa: BLE001 - a model's own code may raise anything; the next card still runs
            result = PendingResult(card=card, error=describe_failure(exc))
        results.append(result)
        if on_result:
            on_result(result)
    return results
