"""The runs repository: a run's lifecycle in the store, and reading runs back.

A run is started (``running``, owned by this process), stores its batches one transaction each, and is
finished with its metrics or marked failed; ``--resume`` takes over an unfinished one whose process is
gone (:func:`process_owner`, :func:`_owner_alive`). An export's run is imported whole. Every method is
one short transaction through :class:`invarbench.store.engine.Database`.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from invarbench.errors import InvarbenchError, NotFoundError, ValidationError
from invarbench.store.engine import Database
from invarbench.store.provenance import PROVENANCE_FIELDS, Provenance
from invarbench.store.schema import (
    ArtifactRecord,
    ExampleRecord,
    MetricRecord,
    ModelRecord,
    ModelSnapshot,
    RunRecord,
)

if TYPE_CHECKING:  # the store does not need torch, and importing it stays cheap
    from invarbench.metrics.stats import MetricValue

# A "running" run whose process is on another machine counts as abandoned after this long without a write.
STALE_AFTER = timedelta(hours=1)

# batch_start -> measurement -> field -> per-example values
StoredBatches = dict[int, dict[str, dict[str, list]]]


@dataclass(frozen=True)
class ResumedRun:
    """An unfinished run taken over by this process, with what it had already stored."""

    run_id: int
    batches: StoredBatches
    duration_s: float  # seconds its earlier attempts spent, up to their last stored batch
    peak_memory_bytes: int | None
    attempts: int  # including this one


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started: this boot's id and the process's start time in clock ticks since
    boot (Linux's /proc). A process that later got the same pid, in this boot or another one (a
    restarted machine or container keeps its host name), has another value. None without /proc."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return f"{boot[:8]}.{fields[19]}" if len(fields) > 19 else None  # field 22 of proc(5): starttime


def process_owner() -> str:
    """This process, as a run records its owner: ``host:pid``, with ``@start`` where /proc tells when it started."""
    start = _process_start(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}" + (f"@{start}" if start else "")


def _owner_alive(owner: str | None, updated_at: datetime | None) -> bool:
    """Whether the process that last worked on a 'running' run may still be working on it.

    On another host: while its last progress is less than :data:`STALE_AFTER` old. On this host: while
    a process with its pid runs and, where the owner records its start, started at that moment (so a
    process that inherited the pid after the owner died, or after the machine restarted, does not count).
    """
    if not owner or ":" not in owner:
        return False
    host, _, rest = owner.rpartition(":")
    pid_text, _, start = rest.partition("@")
    if host != socket.gethostname():
        return updated_at is not None and datetime.now(timezone.utc) - _aware(updated_at) < STALE_AFTER
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    if start:
        now = _process_start(pid)
        return now is None or now == start
    return True


class RunRepository(Database):
    """The runs of a results database: their lifecycle (start, batches, finish or fail, resume), imports and
    reads. Opening it opens the database (:class:`~invarbench.store.engine.Database`)."""

    # --- writing -------------------------------------------------------------------------
    def upsert_model(self, **snapshot: str | None) -> int:
        """The id of this model snapshot, added if new: the fields of :class:`ModelSnapshot` by keyword (a
        missing or unknown one raises TypeError), identified by its card id, card hash and file hash."""
        model = ModelSnapshot(**snapshot)

        def add(s: Session) -> int:
            existing = _model_id(s, model)
            if existing is not None:
                return existing
            record = model.record()
            s.add(record)
            s.flush()
            return record.id

        try:
            return self._write(add)
        except IntegrityError:  # another process added the same snapshot at the same moment
            found = self._write(lambda s: _model_id(s, model))
            assert found is not None
            return found

    def start_run(self, model_id: int, prov: Provenance, *, uid: str | None = None) -> int:
        """A new run in status 'running', owned by this process, with every field of ``prov``."""

        def add(s: Session) -> int:
            now = datetime.now(timezone.utc)
            run = RunRecord(
                uid=uid or str(uuid.uuid4()),
                model_id=model_id,
                status="running",
                flags=[],
                started_at=now,
                updated_at=now,
                owner=process_owner(),
                attempts=1,
                **prov.values(),
            )
            s.add(run)
            s.flush()
            return run.id

        return self._write(add)

    def resume_run(self, model_id: int, prov: Provenance) -> ResumedRun | None:
        """Take over the newest unfinished run with exactly this model snapshot and provenance.

        Exactly this provenance: an equal value (NULL equal to NULL) in every field that takes part
        in resume matching (:attr:`ProvenanceField.resume`): all but ``suite_settings``, for which
        its hash ``suite_settings_hash`` stands. Unfinished: 'failed', or 'running' with no live
        process behind it (see :func:`_owner_alive`). Returns None when there is none; the run is then 'running' again,
        owned by this process, with its stored batches.
        """

        def claim(s: Session) -> ResumedRun | None:
            q = (
                select(RunRecord)
                .where(RunRecord.model_id == model_id, RunRecord.status.in_(("running", "failed")))
                .where(
                    *(
                        getattr(RunRecord, f.name).is_not_distinct_from(f.value(prov))
                        for f in PROVENANCE_FIELDS
                        if f.resume
                    )
                )
                .order_by(RunRecord.id.desc())
            )
            if self.backend == "postgresql":
                q = q.with_for_update(skip_locked=True)
            for run in s.scalars(q):
                if run.status == "running" and _owner_alive(run.owner, run.updated_at):
                    continue
                run.status = "running"
                run.error = None
                run.finished_at = None
                run.owner = process_owner()
                run.updated_at = datetime.now(timezone.utc)
                run.attempts = (run.attempts or 1) + 1
                return ResumedRun(
                    run_id=run.id,
                    batches=self._batches(s, run.id),
                    duration_s=run.duration_s or 0.0,
                    peak_memory_bytes=run.peak_memory_bytes,
                    attempts=run.attempts,
                )
            return None

        return self._write(claim)

    @staticmethod
    def _batches(s: Session, run_id: int) -> StoredBatches:
        batches: StoredBatches = {}
        rows = s.execute(
            select(ExampleRecord.batch_start, ExampleRecord.measurement, ExampleRecord.values)
            .where(ExampleRecord.run_id == run_id)
            .order_by(ExampleRecord.batch_start, ExampleRecord.measurement)
        )
        for start, measurement, values in rows:
            batches.setdefault(start, {})[measurement] = values
        return batches

    def stored_batches(self, run_id: int) -> StoredBatches:
        """Every stored batch of a run: batch_start -> measurement -> field -> values."""
        with self.session() as s:
            return self._batches(s, run_id)

    def add_examples(
        self,
        run_id: int,
        batch_start: int,
        values: dict[str, dict[str, list]],
        *,
        artifacts: Mapping[str, bytes] | None = None,
        duration_s: float | None = None,
        peak_memory_bytes: int | None = None,
    ) -> None:
        """Store ALL measurements of one batch, and the files they made for it (``artifacts``: plain
        file name -> bytes, see :meth:`add_artifact`), in one transaction: a batch is stored whole
        or not at all, so a resumed run finds every file of the batches it does not redo.

        ``duration_s`` and ``peak_memory_bytes`` (the run's totals so far) are recorded with it, so
        that even a run killed later says how long it ran and how much memory it used.
        """
        files = [_artifact(run_id, name, data) for name, data in (artifacts or {}).items()]

        def add(s: Session) -> None:
            run = s.get(RunRecord, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            for measurement, fields in values.items():
                s.add(ExampleRecord(run_id=run_id, measurement=measurement, batch_start=batch_start, values=fields))
            for record in files:
                s.execute(
                    delete(ArtifactRecord).where(ArtifactRecord.run_id == run_id, ArtifactRecord.name == record.name)
                )
                s.add(record)
            _record_progress(run, duration_s, peak_memory_bytes)
            s.flush()

        try:
            self._write(add)
        except IntegrityError:
            raise InvarbenchError(
                f"batch at example {batch_start} of run {run_id} is already stored: another process is "
                "working on this run"
            ) from None

    def finish_run(
        self,
        run_id: int,
        metrics: Sequence[MetricValue],
        flags: Sequence[str],
        *,
        duration_s: float | None = None,
        peak_memory_bytes: int | None = None,
    ) -> None:
        """Store the run's metrics and mark it finished (``duration_s``: default, since it started)."""

        def finish(s: Session) -> None:
            run = s.get(RunRecord, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            s.execute(delete(MetricRecord).where(MetricRecord.run_id == run_id))
            for m in metrics:
                s.add(
                    MetricRecord(
                        run_id=run_id,
                        name=m.name,
                        value=m.value,
                        stderr=_opt(m.stderr),
                        ci_low=_opt(m.ci_low),
                        ci_high=_opt(m.ci_high),
                        n=m.n,
                    )
                )
            now = datetime.now(timezone.utc)
            run.status = "finished"
            run.error = None
            run.flags = list(flags)
            run.finished_at = now
            _record_progress(run, duration_s, peak_memory_bytes)
            if duration_s is None:
                run.duration_s = (now - _aware(run.started_at)).total_seconds()

        self._write(finish)

    def fail_run(
        self, run_id: int, error: str, *, duration_s: float | None = None, peak_memory_bytes: int | None = None
    ) -> None:
        """Mark the run failed with ``error``; its stored batches stay, for ``--resume``."""

        def fail(s: Session) -> None:
            run = s.get(RunRecord, run_id)
            if run is None:
                return
            now = datetime.now(timezone.utc)
            run.status = "failed"
            run.error = error
            run.finished_at = now
            _record_progress(run, duration_s, peak_memory_bytes)
            if duration_s is None and run.duration_s is None:
                run.duration_s = (now - _aware(run.started_at)).total_seconds()

        self._write(fail)

    def add_artifact(self, run_id: int, name: str, data: bytes, media_type: str | None = None) -> None:
        """Store (or replace) the file ``name`` of a run, e.g. an image strip the site shows. Raises
        :class:`ValidationError` for a name that is not a plain file name, :class:`NotFoundError`
        for an unknown run."""
        record = _artifact(run_id, name, data, media_type)

        def add(s: Session) -> None:
            if s.get(RunRecord, run_id) is None:
                raise NotFoundError(f"run {run_id} not found")
            s.execute(delete(ArtifactRecord).where(ArtifactRecord.run_id == run_id, ArtifactRecord.name == name))
            s.add(record)

        self._write(add)

    def import_run(
        self,
        model: ModelSnapshot,
        run: RunRecord,
        metrics: list[MetricRecord],
        examples: list[ExampleRecord],
        artifacts: list[ArtifactRecord],
    ) -> tuple[int, bool]:
        """Add a complete run from an export unless a run with its uid exists: (run id, added?)."""

        def add(s: Session) -> tuple[int, bool]:
            existing = s.scalar(select(RunRecord.id).where(RunRecord.uid == run.uid))
            if existing is not None:
                return existing, False
            model_id = _model_id(s, model)
            if model_id is None:
                record = model.record()
                s.add(record)
                s.flush()
                model_id = record.id
            run.model_id = model_id
            run.metrics = metrics
            run.examples = examples
            run.artifacts = artifacts
            s.add(run)
            s.flush()
            return run.id, True

        return self._write(add)

    # --- reading -------------------------------------------------------------------------
    def list_runs(
        self, *, dataset: str | None = None, model: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first, with their model and metrics (not their per-example values)."""

        def read() -> list[RunRecord]:
            with self.session() as s:
                q = (
                    select(RunRecord)
                    .join(RunRecord.model)
                    .options(selectinload(RunRecord.metrics), selectinload(RunRecord.model))
                    .order_by(RunRecord.id)
                )
                if dataset:
                    q = q.where(RunRecord.dataset == dataset)
                if model:
                    q = q.where(ModelRecord.card_id == model)
                if status:
                    q = q.where(RunRecord.status == status)
                return list(s.scalars(q))

        return self._guard(read)

    def run_id_for_uid(self, uid: str) -> int | None:
        """The id of the run with this globally unique id, if it is stored here."""

        def read() -> int | None:
            with self.session() as s:
                return s.scalar(select(RunRecord.id).where(RunRecord.uid == uid))

        return self._guard(read)

    def get_run(self, run_id: int) -> RunRecord:
        """One run with its model, metrics, per-example values and artifacts."""

        def read() -> RunRecord | None:
            with self.session() as s:
                return s.scalar(
                    select(RunRecord)
                    .where(RunRecord.id == run_id)
                    .options(
                        selectinload(RunRecord.metrics),
                        selectinload(RunRecord.model),
                        selectinload(RunRecord.examples),
                        selectinload(RunRecord.artifacts),
                    )
                )

        run = self._guard(read)
        if run is None:
            raise NotFoundError(f"run {run_id} not found in {self.display_url()}: see 'invarbench results list'")
        return run

    def _most_examples_asked(self) -> dict[tuple[str, str, int], int]:
        """(dataset, suite name, suite version) -> the most examples a run on the test split asked for."""

        def read() -> dict[tuple[str, str, int], int]:
            with self.session() as s:
                rows = s.execute(
                    select(
                        RunRecord.dataset,
                        RunRecord.suite_name,
                        RunRecord.suite_version,
                        func.max(RunRecord.examples_requested),
                    )
                    .where(RunRecord.data_source.is_(None))
                    .group_by(RunRecord.dataset, RunRecord.suite_name, RunRecord.suite_version)
                )
                return {(d, n, v): most for d, n, v, most in rows}

        return self._guard(read)


def _model_id(s: Session, model: ModelSnapshot) -> int | None:
    """The id of the stored model row of this snapshot (card id, card hash, file hash), if any."""
    return s.scalar(
        select(ModelRecord.id).where(
            ModelRecord.card_id == model.card_id,
            ModelRecord.card_sha256 == model.card_sha256,
            ModelRecord.file_sha256 == model.file_sha256,
        )
    )


def _artifact(run_id: int, name: str, data: bytes, media_type: str | None = None) -> ArtifactRecord:
    """A run's file as a record; :class:`ValidationError` unless ``name`` is a plain file name."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValidationError(f"artifact name '{name}' must be a plain file name such as 'examples.png'")
    return ArtifactRecord(
        run_id=run_id,
        name=name,
        media_type=media_type or mimetypes.guess_type(name)[0] or "application/octet-stream",
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        data=bytes(data),
        created_at=datetime.now(timezone.utc),
    )


def _record_progress(run: RunRecord, duration_s: float | None, peak_memory_bytes: int | None) -> None:
    run.updated_at = datetime.now(timezone.utc)
    if duration_s is not None:
        run.duration_s = duration_s
    if peak_memory_bytes is not None:
        run.peak_memory_bytes = max(peak_memory_bytes, run.peak_memory_bytes or 0)


def _opt(value: float | None) -> float | None:
    """Optional statistics (stderr, CI bounds): NaN is stored as absent."""
    return None if value is None or math.isnan(value) else float(value)


def _aware(ts: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone=True columns; they were written in UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
