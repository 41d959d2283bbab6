"""Submission status: where each registered model card stands with a suite, derived, never kept by hand.

Per card and the current version of a suite (for the card's data set), one of

- ``evaluated``: a finished full run (on the data set's own test split, over all of the suite version's
  examples) of the model file the card pins now;
- ``failed``: no such run, and the newest full attempt failed; its reason is that run's stored error;
- ``pending``: neither (the card is merged and waits for an evaluation, or one is running).

A run counts for a card when it has the card's id, the suite's name and current version and the model file
sha256 the card pins now, and is a full run by the leaderboard's own rule
(:func:`invarbench.leaderboard_policy.is_full`: the official test split, told by its data digest where known,
over the suite version's full number of examples): a card that is changed to pin another file is pending
again, while an edit of its name or notes keeps its result. :func:`derive_statuses` is the pure rule over cards
and runs; :func:`submission_statuses` reads them from a cards folder and a store. ``invarbench cards
status`` prints them, ``invarbench eval --pending`` evaluates what is not evaluated, and the site can
show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from invarbench.cards.catalog import CardRef, card_paths, default_cards_dir, load_card
from invarbench.errors import InvarbenchError
from invarbench.leaderboard_policy import is_full
from invarbench.store.db import Store
from invarbench.store.schema import RunRecord

PENDING, EVALUATED, FAILED = "pending", "evaluated", "failed"


@dataclass(frozen=True)
class SuiteTarget:
    """The current version of a suite for one data set, and its full number of examples."""

    name: str
    version: int
    num_examples: int


@dataclass(frozen=True)
class SubmissionStatus:
    """Where one card stands with one suite version. ``run_id``: the evaluated run, or the failed one;
    ``reason``: the failed run's stored error; ``running``: a full run of it is under way (pending)."""

    card_id: str
    name: str
    dataset: str
    suite: str
    suite_version: int
    state: str
    run_id: int | None = None
    reason: str | None = None
    running: bool = False
    path: Path | None = None


def pinned_sha256(ref: CardRef) -> str:
    """The model file sha256 the card pins (Hub or local source)."""
    source = ref.card.source
    return source.hub.sha256 if source.hub is not None else source.sha256


def _counts(run: RunRecord, ref: CardRef, target: SuiteTarget) -> bool:
    return (
        run.model.card_id == ref.card.id
        and run.dataset == ref.card.dataset
        and run.suite_name == target.name
        and run.suite_version == target.version
        and run.model.file_sha256 == pinned_sha256(ref)
        and is_full(run, target.num_examples)
    )


def derive_statuses(
    cards: Sequence[CardRef], runs: Sequence[RunRecord], targets: Mapping[str, SuiteTarget]
) -> list[SubmissionStatus]:
    """The status of each card (by id) with the suite version ``targets[card.dataset]``, from ``runs``
    (any status, with their model loaded). Cards whose data set has no target are left out."""
    out = []
    for ref in sorted(cards, key=lambda r: r.card.id):
        card = ref.card
        target = targets.get(card.dataset)
        if target is None:
            continue
        mine = sorted((r for r in runs if _counts(r, ref, target)), key=lambda r: r.id)
        full = [r for r in mine if r.status == "finished"]
        attempts = [r for r in mine if r.status != "finished"]
        base = dict(card_id=card.id, name=card.name, dataset=card.dataset, suite=target.name, path=ref.path)
        base["suite_version"] = target.version
        if full:
            out.append(SubmissionStatus(**base, state=EVALUATED, run_id=full[-1].id))
        elif attempts and attempts[-1].status == "failed":
            newest = attempts[-1]
            out.append(
                SubmissionStatus(**base, state=FAILED, run_id=newest.id, reason=newest.error or "no error stored")
            )
        else:
            out.append(SubmissionStatus(**base, state=PENDING, running=bool(attempts), run_id=None))
    return out


def registered_cards(cards_dir: Path | None = None) -> tuple[list[CardRef], list[str]]:
    """The valid cards under ``cards_dir`` (default :func:`default_cards_dir`), and one error line per card
    that does not load (``invarbench cards validate`` says more)."""
    root = cards_dir or default_cards_dir()
    refs, errors = [], []
    for path in card_paths(root):
        try:
            refs.append(load_card(path, check_location=True, cards_dir=root))
        except InvarbenchError as exc:
            errors.append(str(exc))
    return refs, errors


def suite_targets(suite: str, datasets: Sequence[str]) -> dict[str, SuiteTarget]:
    """The current version of ``suite`` (a packaged suite's name or a suite file of one's own) for each of
    ``datasets`` that it has a version for. Raises the suite's error when it has none of them (an unknown
    suite, an invalid file)."""
    from invarbench.suites import load_suite

    targets: dict[str, SuiteTarget] = {}
    first_error: InvarbenchError | None = None
    for dataset in sorted(set(datasets)):
        try:
            s = load_suite(suite, dataset)
        except InvarbenchError as exc:  # no version for this data set (or a file for another one)
            first_error = first_error or exc
            continue
        targets[dataset] = SuiteTarget(s.name, s.version, s.num_examples)
    if not targets and first_error is not None:
        raise first_error
    return targets


def submission_statuses(store: Store, cards: Sequence[CardRef], suite: str = "standard") -> list[SubmissionStatus]:
    """Each card's status with the current version of ``suite`` for its data set, from the runs in ``store``."""
    targets = suite_targets(suite, [r.card.dataset for r in cards])
    ids = {r.card.id for r in cards}
    runs = [r for r in store.list_runs() if r.model.card_id in ids]
    return derive_statuses(cards, runs, targets)
