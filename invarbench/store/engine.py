"""The database engine of the store: its URL, the engine and its sessions, write retries and migrations.

One :class:`Database` per URL: ``sqlite:///PATH`` (the default, a file under ``$XDG_DATA_HOME/invarbench``)
or ``postgresql://USER@HOST/DB`` (needs ``invarbench[postgres]``). Opening it brings the schema up to the
newest migration (:mod:`invarbench.store.migrate`).

Many writers: every write is one short transaction. On SQLite the database runs in WAL mode,
writes take the write lock when they begin (``BEGIN IMMEDIATE``, so a transaction never has to
upgrade a read lock, which SQLite cannot wait for), wait up to 30 s for another writer
(``busy_timeout``), and are retried if the lock is still taken after that.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from invarbench.errors import InvarbenchError, ValidationError
from invarbench.store import migrate

DB_ENV = "INVARBENCH_DB"
BUSY_TIMEOUT_MS = 30_000
WRITE_RETRIES = 8
T = TypeVar("T")


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


class Database:
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
