"""Opening the store and reading and writing runs."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from invarbench.errors import InvarbenchError, NotFoundError, ValidationError
from invarbench.metrics.stats import MetricValue
from invarbench.store.schema import Base, ExampleRecord, MetricRecord, ModelRecord, RunRecord

DB_ENV = "INVARBENCH_DB"


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/invarbench/invarbench.db`` (``~/.local/share/invarbench/invarbench.db``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "invarbench" / "invarbench.db"


def default_db_url() -> str:
    """``$INVARBENCH_DB`` if set, else a SQLite file at :func:`default_db_path`."""
    return os.environ.get(DB_ENV) or f"sqlite:///{default_db_path()}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA busy_timeout=30000")  # wait for another writer instead of failing
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@dataclass(frozen=True)
class RunProvenance:
    suite_name: str
    suite_version: int
    dataset: str
    invarbench_version: str
    git_commit: str | None
    torch_version: str
    device: str
    seed: int
    batch_size: int
    examples_requested: int
    examples_effective: int


class Store:
    """A results database at ``url`` (created on first use)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_db_url()
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise ValidationError(
                f"invalid database URL '{self.url}': use sqlite:///PATH or postgresql://USER@HOST/DB"
            ) from None
        kwargs: dict = {}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except Exception as exc:  # noqa: BLE001 - unknown dialect, missing driver
            raise ValidationError(f"cannot open database '{self.url}': {exc}") from None
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            Base.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise InvarbenchError(f"cannot open database '{self.url}': {exc.orig}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

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
        with self.session() as s:
            existing = s.scalar(
                select(ModelRecord).where(
                    ModelRecord.card_id == card_id,
                    ModelRecord.card_sha256 == card_sha256,
                    ModelRecord.file_sha256 == file_sha256,
                )
            )
            if existing is not None:
                return existing.id
            record = ModelRecord(
                card_id=card_id, name=name, dataset=dataset, card_yaml=card_yaml, card_sha256=card_sha256,
                file_sha256=file_sha256, hub_repo=hub_repo, hub_revision=hub_revision,
                training_method=training_method,
            )
            s.add(record)
            s.flush()
            return record.id

    def start_run(self, model_id: int, prov: RunProvenance) -> int:
        with self.session() as s:
            run = RunRecord(
                model_id=model_id, status="running", flags=[], started_at=datetime.now(timezone.utc),
                **prov.__dict__,
            )
            s.add(run)
            s.flush()
            return run.id

    def add_examples(self, run_id: int, measurement: str, batch_start: int, values: dict[str, list]) -> None:
        with self.session() as s:
            s.add(ExampleRecord(run_id=run_id, measurement=measurement, batch_start=batch_start, values=values))

    def finish_run(self, run_id: int, metrics: Sequence[MetricValue], flags: Sequence[str]) -> None:
        with self.session() as s:
            run = s.get(RunRecord, run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
            for m in metrics:
                s.add(MetricRecord(run_id=run_id, name=m.name, value=m.value, stderr=m.stderr,
                                   ci_low=m.ci_low, ci_high=m.ci_high, n=m.n))
            now = datetime.now(timezone.utc)
            run.status = "finished"
            run.flags = list(flags)
            run.finished_at = now
            run.duration_s = (now - _aware(run.started_at)).total_seconds()

    def fail_run(self, run_id: int, error: str) -> None:
        with self.session() as s:
            run = s.get(RunRecord, run_id)
            if run is not None:
                now = datetime.now(timezone.utc)
                run.status = "failed"
                run.error = error
                run.finished_at = now
                run.duration_s = (now - _aware(run.started_at)).total_seconds()

    # --- reading -------------------------------------------------------------------------
    def list_runs(self, *, dataset: str | None = None, model: str | None = None) -> list[RunRecord]:
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
            return list(s.scalars(q))

    def get_run(self, run_id: int) -> RunRecord:
        with self.session() as s:
            run = s.scalar(
                select(RunRecord)
                .where(RunRecord.id == run_id)
                .options(selectinload(RunRecord.metrics), selectinload(RunRecord.model),
                         selectinload(RunRecord.examples))
            )
            if run is None:
                raise NotFoundError(f"run {run_id} not found in {self.url}: see 'invarbench results list'")
            return run

    def latest_finished_runs(self) -> list[RunRecord]:
        """The newest finished run of each (model card, suite name, dataset): the leaderboard's rows."""
        latest: dict[tuple[str, str, str], RunRecord] = {}
        for run in self.list_runs():
            if run.status == "finished":
                latest[(run.model.card_id, run.suite_name, run.dataset)] = run
        return list(latest.values())


def _aware(ts: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone=True columns; they were written in UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
