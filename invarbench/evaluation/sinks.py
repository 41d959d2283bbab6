"""Where a run goes: the :class:`RunSink` the runner hands the run's start, batches and end to.

- :class:`StoreSink` records the run in a :class:`~invarbench.store.Store` (``invarbench eval``, and
  the Python API with ``db``): the model snapshot, the run's provenance, every batch in its own
  transaction as soon as it is computed, and the finished or failed run. With ``resume`` it takes
  over the newest unfinished run with the same model snapshot and provenance.
- :class:`NullSink` records nothing (the Python API without ``db``): no database is opened.
- :class:`RankZeroSink` wraps either for a run launched by torchrun: rank 0 alone writes, and
  every rank learns from it the run it continues (:mod:`invarbench.evaluation.distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from invarbench.evaluation import distributed
from invarbench.evaluation.distributed import Ranks
from invarbench.evaluation.pipeline import BatchResult, SuiteResult
from invarbench.evaluation.speed import EXECUTION_ARTIFACT, execution_document
from invarbench.measurements import PerExample
from invarbench.store import ModelSnapshot, Provenance, Store


@dataclass(frozen=True)
class StartedRun:
    """A run as a sink started it: its id (None where nothing is recorded), the batches an earlier
    attempt stored (start -> per-example values; read back, not recomputed), the seconds those
    attempts spent, and whether an unfinished run was continued."""

    run_id: int | None
    stored: Mapping[int, PerExample] = field(default_factory=dict)
    duration_s: float = 0.0
    resumed: bool = False


class RunSink(Protocol):
    """What receives a run. ``duration_s`` is seconds spent so far (earlier attempts included),
    ``peak_memory_bytes`` the process's peak so far (None where unknown)."""

    def start(self, record: ModelSnapshot, provenance: Provenance, *, resume: bool) -> StartedRun:
        """Record the model and start the run, or continue an unfinished one when ``resume``."""
        ...

    def add_batch(
        self, run_id: int | None, batch: BatchResult, *, duration_s: float, peak_memory_bytes: int | None
    ) -> None:
        """Record one computed batch (its values and files) whole."""
        ...

    def finish(
        self,
        run_id: int | None,
        result: SuiteResult,
        *,
        execution: dict[str, Any] | None,
        duration_s: float,
        peak_memory_bytes: int | None,
    ) -> None:
        """Record the metrics and flags, and how the run was computed (``execution``, if not plainly)."""
        ...

    def fail(self, run_id: int | None, message: str, *, duration_s: float, peak_memory_bytes: int | None) -> None:
        """Mark the run failed with ``message`` (one line); never raises, so the run's own error stands."""
        ...


class NullSink:
    """Records nothing: a run without a store (``run_id`` None, nothing to resume)."""

    def start(self, record: ModelSnapshot, provenance: Provenance, *, resume: bool) -> StartedRun:  # noqa: ARG002
        return StartedRun(run_id=None)

    def add_batch(self, run_id: int | None, batch: BatchResult, **progress: Any) -> None:  # noqa: ARG002
        return None

    def finish(self, run_id: int | None, result: SuiteResult, **details: Any) -> None:  # noqa: ARG002
        return None

    def fail(self, run_id: int | None, message: str, **progress: Any) -> None:  # noqa: ARG002
        return None


class StoreSink:
    """Records the run in ``store`` through its public methods (see the module doc)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self, record: ModelSnapshot, provenance: Provenance, *, resume: bool) -> StartedRun:
        model_id = self.store.upsert_model(**dataclasses.asdict(record))
        resumed = self.store.resume_run(model_id, provenance) if resume else None
        if resumed is None:
            return StartedRun(run_id=self.store.start_run(model_id, provenance))
        return StartedRun(resumed.run_id, resumed.batches, resumed.duration_s, resumed=True)

    def add_batch(
        self, run_id: int | None, batch: BatchResult, *, duration_s: float, peak_memory_bytes: int | None
    ) -> None:
        self.store.add_examples(
            run_id,
            batch.start,
            batch.values,
            artifacts=batch.artifacts,
            duration_s=duration_s,
            peak_memory_bytes=peak_memory_bytes,
        )

    def finish(
        self,
        run_id: int | None,
        result: SuiteResult,
        *,
        execution: dict[str, Any] | None,
        duration_s: float,
        peak_memory_bytes: int | None,
    ) -> None:
        if execution is not None:
            self.store.add_artifact(run_id, EXECUTION_ARTIFACT, execution_document(execution), "application/json")
        self.store.finish_run(
            run_id, result.metrics, result.flags, duration_s=duration_s, peak_memory_bytes=peak_memory_bytes
        )

    def fail(self, run_id: int | None, message: str, *, duration_s: float, peak_memory_bytes: int | None) -> None:
        if run_id is None:
            return
        with contextlib.suppress(Exception):  # the store may be what failed: keep the original error
            self.store.fail_run(run_id, message, duration_s=duration_s, peak_memory_bytes=peak_memory_bytes)


class RankZeroSink:
    """``inner`` on rank 0 of a distributed run, nothing on the other ranks; :meth:`start` gives every
    rank the run that rank 0 started or continued (one broadcast)."""

    def __init__(self, inner: RunSink, ranks: Ranks) -> None:
        self.inner = inner
        self.ranks = ranks

    def start(self, record: ModelSnapshot, provenance: Provenance, *, resume: bool) -> StartedRun:
        started = self.inner.start(record, provenance, resume=resume) if self.ranks.main else None
        return distributed.broadcast(self.ranks, started, "starting the run")

    def add_batch(
        self, run_id: int | None, batch: BatchResult, *, duration_s: float, peak_memory_bytes: int | None
    ) -> None:
        if self.ranks.main:
            self.inner.add_batch(run_id, batch, duration_s=duration_s, peak_memory_bytes=peak_memory_bytes)

    def finish(
        self,
        run_id: int | None,
        result: SuiteResult,
        *,
        execution: dict[str, Any] | None,
        duration_s: float,
        peak_memory_bytes: int | None,
    ) -> None:
        if self.ranks.main:
            self.inner.finish(
                run_id, result, execution=execution, duration_s=duration_s, peak_memory_bytes=peak_memory_bytes
            )

    def fail(self, run_id: int | None, message: str, *, duration_s: float, peak_memory_bytes: int | None) -> None:
        if self.ranks.main:
            self.inner.fail(run_id, message, duration_s=duration_s, peak_memory_bytes=peak_memory_bytes)


def sink_for(store: Store | None, ranks: Ranks | None) -> RunSink:
    """The sink of a run: :class:`StoreSink` with a store, else :class:`NullSink`; under torchrun
    wrapped in :class:`RankZeroSink`. Raises ``ValueError`` when rank 0 of a distributed run has no
    store (it alone writes: the other ranks pass None)."""
    sink: RunSink = NullSink() if store is None else StoreSink(store)
    if ranks is None:
        return sink
    if ranks.main and store is None:
        raise ValueError("rank 0 of a distributed run needs the store")
    return RankZeroSink(sink, ranks)
