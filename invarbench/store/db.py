"""Opening the store and reading and writing runs.

One :class:`Store` per database URL: ``sqlite:///PATH`` (the default, a file under
``$XDG_DATA_HOME/invarbench``) or ``postgresql://USER@HOST/DB`` (needs ``invarbench[postgres]``).
Opening it brings the schema up to the newest migration (:mod:`invarbench.store.migrate`).

Many writers: every write is one short transaction. On SQLite the database runs in WAL mode,
writes take the write lock when they begin (``BEGIN IMMEDIATE``, so a transaction never has to
upgrade a read lock, which SQLite cannot wait for), wait up to 30 s for another writer
(``busy_timeout``), and are retried if the lock is still taken after that.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from invarbench.errors import InvarbenchError, NotFoundError, ValidationError
from invarbench.store import migrate
from invarbench.store.provenance import (
    PROVENANCE_FIELDS,
    Provenance,
)
from invarbench.store.schema import ArtifactRecord, ExampleRecord, MetricRecord, ModelRecord, RunRecord

if TYPE_CHECKING:  # the store does not need torch, and importing it stays cheap
    from invarbench.metrics.stats import MetricValue

DB_ENV = "INVARBENCH_DB"
BUSY_TIMEOUT_MS = 30_000
WRITE_RETRIES = 8
# A "running" run whose process is on another machine counts as abandoned after this long without a write.
STALE_AFTER = timedelta(hours=1)

# batch_start -> measurement -> field -> per-example values
StoredBatches = dict[int, dict[str, dict[str, list]]]
T = TypeVar("T")

# How a finished run stands (see :meth:`Store.standing_of` and :func:`run_kind`): only full runs are ranked.
FULL = "full"  # over the suite version's full number of examples, on the official test split
SMOKE = "smoke"  # over fewer examples (``--limit``), on the data set's own test split
CUSTOM_DATA = "custom_data"  # on other examples than the official split's (``--data npz:PATH``, another digest)


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/invarbench/invarbench.db`` (``~/.local/share/invarbench/invarbench.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "invarbench" / "invarbench.db"


def default_db_url() -> str:
    """``$INVARBENCH_DB`` if set, else a SQLite file at :func:`default_db_path`."""
    return os.environ.get(DB_ENV) or f"sqlite:///{default_db_path()}"


def _on_connect_sqlite(dbapi_conn, _record) -> None:  # DB-API connection
    # SQLAlchemy, not the sqlite3 module, decides when transactions begin (see _on_begin_sqlite).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")  # wait for another writer instead of failing
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _on_begin_sqlite(conn) -> None:  # a SQLAlchemy Connection
    mode = conn.get_execution_options().get("invarbench_begin", "")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _normalise_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValidationError(
            f"invalid database URL '{raw}': use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from None
    if url.drivername in ("postgresql", "postgres"):  # psycopg 3 is the driver invarbench ships for
        url = url.set(drivername="postgresql+psycopg")
    return url


def redact(url: str | URL) -> str:
    """The URL as it may be shown: without its password."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def _check_sqlite_location(database: Path) -> None:
    """Create the SQLite database's folder; one line naming it when it cannot be created or written (SQLite
    writes its journal, ``-wal`` and ``-shm`` beside the database, so even reading needs a writable folder)."""
    folder = database.parent
    fix = "make it writable, or choose another --db (or $INVARBENCH_DB)"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot create the database folder {folder} ({exc.strerror}): create it, or choose another --db "
            "(or $INVARBENCH_DB)"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValidationError(f"the database folder {folder} is not writable: {fix}")
    if database.exists() and not os.access(database, os.R_OK | os.W_OK):
        raise ValidationError(f"the database file {database} is not writable: {fix}")


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


@dataclass(frozen=True)
class Standing:
    """A finished run and how it stands: ranked among full runs, or listed apart."""

    run: RunRecord
    kind: str  # FULL, SMOKE or CUSTOM_DATA
    full_examples: int | None  # the suite version's full number of examples; None when it cannot be known

    @property
    def ranked(self) -> bool:
        return self.kind == FULL


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


class Store:
    """A results database at ``url``, created or upgraded to the newest schema when opened.

    ``migrate_schema=False`` opens it as it is (what ``invarbench db status`` does).
    """

    def __init__(self, url: str | None = None, *, migrate_schema: bool = True) -> None:
        self.url = url or default_db_url()
        parsed = _normalise_url(self.url)
        self.backend = parsed.get_backend_name()
        kwargs: dict = {}
        if self.backend == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                _check_sqlite_location(Path(database).expanduser())
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
        elif self.backend == "postgresql":
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except ModuleNotFoundError as exc:
            hint = " (install it with: pip install 'invarbench[postgres]')" if self.backend == "postgresql" else ""
            raise ValidationError(
                f"cannot open database '{redact(parsed)}': its driver '{exc.name}' is not installed{hint}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - unknown dialect
            raise ValidationError(f"cannot open database '{redact(parsed)}': {exc}") from None
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", _on_connect_sqlite)
            event.listen(self.engine, "begin", _on_begin_sqlite)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.engine.execution_options(invarbench_begin="IMMEDIATE"), expire_on_commit=False)
        if migrate_schema:
            self.upgrade()

    def display_url(self) -> str:
        return redact(_normalise_url(self.url))

    # --- schema --------------------------------------------------------------------------
    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except OperationalError as exc:
            raise InvarbenchError(f"cannot use database '{self.display_url()}': {str(exc.orig).strip()}") from None

    def upgrade(self) -> list[str]:
        """Apply pending migrations (none if up to date); return the revisions applied."""
        return self._guard(lambda: self._retry(lambda: migrate.upgrade(self.engine)))

    def schema_status(self) -> migrate.SchemaStatus:
        return self._guard(lambda: migrate.status(self.engine))

    def close(self) -> None:
        self.engine.dispose()

    # --- sessions ------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read (or read-mostly) transaction."""
        with self._reads.begin() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A write transaction: on SQLite it holds the write lock from its first statement."""
        with self._writes.begin() as session:
            yield session

    def _retry(self, unit: Callable[[], T]) -> T:
        """Run a unit of work (one transaction), again if SQLite's lock outlasted the busy timeout."""
        for attempt in range(WRITE_RETRIES):
            try:
                return unit()
            except OperationalError as exc:
                if self.backend != "sqlite" or not _is_locked(exc) or attempt == WRITE_RETRIES - 1:
                    raise
                time.sleep(min(0.05 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def _write(self, fn: Callable[[Session], T]) -> T:
        def unit() -> T:
            with self.write_session() as s:
                return fn(s)

        return self._guard(lambda: self._retry(unit))

    # --- writing -------------------------------------------------------------------------
    def upsert_model(
        self,
        *,
        card_id: str,
        name: str,
        dataset: str,
        card_yaml: str,
        card_sha256: str,
        file_sha256: str,
        hub_repo: str | None,
        hub_revision: str | None,
        training_method: str,
    ) -> int:
        """The id of this model snapshot (card hash + file hash), added if new."""

        def find(s: Session) -> int | None:
            return s.scalar(
                select(ModelRecord.id).where(
                    ModelRecord.card_id == card_id,
                    ModelRecord.card_sha256 == card_sha256,
                    ModelRecord.file_sha256 == file_sha256,
                )
            )

        def add(s: Session) -> int:
            existing = find(s)
            if existing is not None:
                return existing
            record = ModelRecord(
                card_id=card_id,
                name=name,
                dataset=dataset,
                card_yaml=card_yaml,
                card_sha256=card_sha256,
                file_sha256=file_sha256,
                hub_repo=hub_repo,
                hub_revision=hub_revision,
                training_method=training_method,
            )
            s.add(record)
            s.flush()
            return record.id

        try:
            return self._write(add)
        except IntegrityError:  # another process added the same snapshot at the same moment
            found = self._write(find)
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
        model_fields: dict,
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
            model_id = s.scalar(
                select(ModelRecord.id).where(
                    ModelRecord.card_id == model_fields["card_id"],
                    ModelRecord.card_sha256 == model_fields["card_sha256"],
                    ModelRecord.file_sha256 == model_fields["file_sha256"],
                )
            )
            if model_id is None:
                model = ModelRecord(**model_fields)
                s.add(model)
                s.flush()
                model_id = model.id
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

    def standings(self, *, dataset: str | None = None, model: str | None = None) -> list[Standing]:
        """Every finished run, oldest first, with how it stands (see :meth:`standing_of`)."""
        return self.standing_of(self.list_runs(dataset=dataset, model=model, status="finished"))

    def standing_of(self, runs: Sequence[RunRecord]) -> list[Standing]:
        """How each of ``runs`` stands, in their order: :data:`FULL` (ranked), :data:`SMOKE` or :data:`CUSTOM_DATA`.

        :func:`run_kind` decides it from the run's data digest, data source, number of examples and
        the suite version's full number of examples. That number is, in this order: the one the run
        recorded (``suite_num_examples``); the suite file's ``num_examples`` when the suite's current
        version is the run's; else (an older suite version, a run stored before migration 0004) the
        most examples any run of that data set, suite and version on the test split asked for in this
        database. Returns one :class:`Standing` per run.
        """
        asked: dict[tuple[str, str, int], int] | None = None
        out = []
        for run in runs:
            full = run.suite_num_examples
            if full is None:
                full = suite_file_examples(run.suite_name, run.dataset, run.suite_version)
            if full is None:
                if asked is None:
                    asked = self._most_examples_asked()
                full = asked.get((run.dataset, run.suite_name, run.suite_version))
            kind = run_kind(run.dataset, run.data_source, run.data_digest, run.examples_effective, full)
            out.append(Standing(run, kind, full))
        return out

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
        return best_full_runs(self.standings(dataset=dataset, model=model), per_suite_version=per_suite_version)

    def latest_finished_runs(self) -> list[RunRecord]:
        """The leaderboard's ranked rows: one full run per (model card, suite name), see :meth:`leaderboard_runs`."""
        return self.leaderboard_runs(per_suite_version=False)

    def unranked_runs(self, *, dataset: str | None = None, model: str | None = None) -> list[Standing]:
        """What the leaderboard lists apart, not ranked: smoke runs and runs on custom data, in id order.

        One per (model card, data set, suite name, data source): the newest suite version's newest
        finished run that is not a full run (see :meth:`standing_of`). Returns their standings.
        """
        return newest_unranked(self.standings(dataset=dataset, model=model))


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


def best_full_runs(standings: Sequence[Standing], *, per_suite_version: bool) -> list[RunRecord]:
    """Of the full runs among ``standings``, the newest (highest id) per (model card, data set, suite name[, suite
    version]); without ``per_suite_version``, the newest suite version's newest. Returns them in id order."""
    best: dict[tuple, RunRecord] = {}
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


@cache
def suite_file_examples(suite_name: str, dataset: str, suite_version: int) -> int | None:
    """The ``num_examples`` of suite ``suite_name`` for ``dataset`` from the package's suite files.

    Returns None when there is no such suite file, or when its current version is not ``suite_version``
    (the files hold only the current version of a suite).
    """
    from invarbench.suites import load_suite  # the suites are only needed for runs that did not record it

    try:
        suite = load_suite(suite_name, dataset)
    except InvarbenchError:
        return None
    return suite.num_examples if suite.version == suite_version else None


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
