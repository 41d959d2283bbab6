"""What the JSON export covers: by default the runs the leaderboard ranks, or the runs named by ``--run``.

The selection follows the leaderboard's rules (:mod:`invarbench.leaderboard_policy`); writing the runs is
:mod:`invarbench.store.results_files` (a folder of files) or :mod:`invarbench.store.documents` (a stream),
and :mod:`invarbench.store.csv_view` (the CSV view).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from invarbench.errors import ValidationError
from invarbench.leaderboard_policy import CUSTOM_DATA, FULL, SMOKE, Standing, best_full_runs
from invarbench.store.db import Store

# Why the JSON export left a run out (see :func:`export_selection`), in the order they are reported.
LEFT_OUT_REASONS = (SMOKE, CUSTOM_DATA, "superseded", "unfinished")


@dataclass(frozen=True)
class ExportSelection:
    """What the JSON export writes by default, and what it left out."""

    runs: list[Standing]  # full runs, loaded whole (examples, artifacts), in id order
    left_out: Counter  # reason (one of LEFT_OUT_REASONS) -> number of runs


def export_selection(store: Store, *, dataset: str | None = None, model: str | None = None) -> ExportSelection:
    """The runs the JSON export covers by default, and a count of the others by reason.

    Per (model card, suite name, suite version), the newest (highest run id) finished full run:
    on the data set's own test split, over the suite version's full number of examples (the runs the
    leaderboard ranks, :meth:`Store.leaderboard_runs`). Left out: smoke runs (``--limit``), runs on
    custom data (``--data npz:``), full runs superseded by a newer one, and unfinished runs.
    ``dataset`` and ``model`` restrict both. Returns an :class:`ExportSelection`.
    """
    every = store.list_runs(dataset=dataset, model=model)
    standings = store.standing_of([r for r in every if r.status == "finished"])
    chosen = {run.id for run in best_full_runs(standings, per_suite_version=True)}
    left_out: Counter = Counter()
    left_out["unfinished"] = sum(r.status != "finished" for r in every)
    for st in standings:
        if st.run.id not in chosen:
            left_out["superseded" if st.kind == FULL else st.kind] += 1
    runs = [replace(st, run=store.get_run(st.run.id)) for st in standings if st.run.id in chosen]
    return ExportSelection(runs, +left_out)


def picked_runs(store: Store, run_ids: Iterable[int]) -> list[Standing]:
    """The runs named by ``--run``, loaded whole, in the order given (each once), smoke and custom-data runs included.

    Raises NotFoundError for an id that is not stored, ValidationError for a run that is not finished.
    """
    runs = []
    for run_id in dict.fromkeys(run_ids):
        run = store.get_run(run_id)
        if run.status != "finished":
            raise ValidationError(
                f"run {run_id} is {run.status}, not finished: only finished runs are exported (continue it with "
                f"'invarbench eval {run.model.card_id} --resume' and the options it was started with)"
            )
        runs.append(run)
    return store.standing_of(runs)
