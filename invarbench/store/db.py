"""The results store: one :class:`Store` per database URL, the facade the rest of invarbench uses.

:class:`Store` is the runs repository (:mod:`invarbench.store.runs`: a run's lifecycle, imports, reads) over
the database engine (:mod:`invarbench.store.engine`: URL, sessions, write retries, migrations), with the
leaderboard's reads on top: how each finished run stands and which runs are ranked, decided by the pure
rules of :mod:`invarbench.leaderboard_policy`.
"""

from __future__ import annotations

from collections.abc import Sequence

from invarbench import leaderboard_policy as policy
from invarbench.leaderboard_policy import Standing
from invarbench.store.runs import RunRepository
from invarbench.store.schema import RunRecord

__all__ = ["Store"]


class Store(RunRepository):
    """A results database at ``url``, created or upgraded to the newest schema when opened.

    ``migrate_schema=False`` opens it as it is (what ``invarbench db status`` does).
    """

    # --- the leaderboard's reads ----------------------------------------------------------
    def standings(self, *, dataset: str | None = None, model: str | None = None) -> list[Standing]:
        """Every finished run, oldest first, with how it stands (see :meth:`standing_of`)."""
        return self.standing_of(self.list_runs(dataset=dataset, model=model, status="finished"))

    def standing_of(self, runs: Sequence[RunRecord]) -> list[Standing]:
        """How each of ``runs`` stands, in their order: :data:`FULL` (ranked), :data:`SMOKE` or :data:`CUSTOM_DATA`.

        :func:`invarbench.leaderboard_policy.standings` decides it from the run's data digest, data source, number
        of examples and the suite version's full number of examples. That number is, in this order: the one the run
        recorded (``suite_num_examples``); the suite file's ``num_examples`` when the suite's current
        version is the run's; else (an older suite version, a run stored before migration 0004) the
        most examples any run of that data set, suite and version on the test split asked for in this
        database. Returns one :class:`Standing` per run.
        """
        from invarbench.suites import suite_file_examples  # only for runs that did not record their suite's size

        return policy.standings(runs, suite_file_examples, self._most_examples_asked)

    def leaderboard_runs(
        self, *, dataset: str | None = None, model: str | None = None, per_suite_version: bool = True
    ) -> list[RunRecord]:
        """The ranked run of each (model card, suite[, suite version]), in id order.

        Only full runs count (:data:`FULL`, see :meth:`standing_of`): finished, on the data set's own
        test split, over the suite version's full number of examples. A smoke run (``--limit``) or a
        run on custom data (``--data npz:``) never stands in, not even when there is no full run. Among
        the full runs the newest (highest run id) wins; without ``per_suite_version``, the newest
        suite version's. Returns the runs with their model and metrics.
        """
        return policy.best_full_runs(self.standings(dataset=dataset, model=model), per_suite_version=per_suite_version)

    def latest_finished_runs(self) -> list[RunRecord]:
        """The leaderboard's ranked rows: one full run per (model card, suite name), see :meth:`leaderboard_runs`."""
        return self.leaderboard_runs(per_suite_version=False)

    def unranked_runs(self, *, dataset: str | None = None, model: str | None = None) -> list[Standing]:
        """What the leaderboard lists apart, not ranked: smoke runs and runs on custom data, in id order.

        One per (model card, data set, suite name, data source): the newest suite version's newest
        finished run that is not a full run (see :meth:`standing_of`). Returns their standings.
        """
        return policy.newest_unranked(self.standings(dataset=dataset, model=model))
