"""Creating and upgrading the store's schema with its named, append-only migrations.

The migrations are Alembic scripts inside the package (``invarbench/store/migrations/versions``),
run programmatically: no ``alembic.ini`` is needed. :func:`upgrade` applies every pending
migration in ONE transaction, under a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory
lock), so that several processes opening a new database at once neither race nor half-apply
anything: the first upgrades, the others wait and then find nothing to do.

A database made by invarbench 0.1.0 (tables from ``create_all``, no ``alembic_version``) is
adopted at revision 0001, whose tables are exactly those, and then upgraded: never rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, select, text

import invarbench
from invarbench.errors import InvarbenchError
from invarbench.store.schema import MigrationRecord

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The first revision's tables: what a database made before migrations existed must contain.
_FIRST_TABLES = {
    "models": {
        "id",
        "card_id",
        "name",
        "dataset",
        "card_yaml",
        "card_sha256",
        "file_sha256",
        "hub_repo",
        "hub_revision",
        "training_method",
    },
    "runs": {
        "id",
        "model_id",
        "suite_name",
        "suite_version",
        "dataset",
        "invarbench_version",
        "git_commit",
        "torch_version",
        "device",
        "seed",
        "batch_size",
        "examples_requested",
        "examples_effective",
        "status",
        "error",
        "flags",
        "started_at",
        "finished_at",
        "duration_s",
    },
    "metrics": {"id", "run_id", "name", "value", "stderr", "ci_low", "ci_high", "n"},
    "example_results": {"id", "run_id", "measurement", "batch_start", "values"},
}
_PG_LOCK_KEY = 0x1A7B_E4C0  # pg_advisory_xact_lock key: one migrator at a time per database


@dataclass(frozen=True)
class Migration:
    revision: str
    description: str  # the first line of the script's docstring
    applied: bool
    applied_at: datetime | None  # from schema_migrations, where the migration was recorded


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: an empty database (or one made before migrations, see ``legacy``)
    head: str
    legacy: bool  # tables made by invarbench 0.1.0, not yet adopted
    migrations: list[Migration]

    @property
    def pending(self) -> list[Migration]:
        return [m for m in self.migrations if not m.applied]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _is_legacy(conn: Connection) -> bool:
    """Tables made by ``create_all`` in invarbench 0.1.0, and no migration record."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables or "models" not in tables:
        return False
    for table, columns in _FIRST_TABLES.items():
        found = {c["name"] for c in inspect(conn).get_columns(table)} if table in tables else set()
        if found != columns:
            raise InvarbenchError(
                f"the database has a '{table}' table that invarbench did not make (columns: "
                f"{', '.join(sorted(found)) or 'none'}): use a new database file or URL"
            )
    return True


def status(engine: Engine) -> SchemaStatus:
    """Where the database's schema stands; changes nothing."""
    script = script_directory()
    with engine.connect() as conn:
        current = _current(conn)
        legacy = current is None and _is_legacy(conn)
        applied_at: dict[str, datetime] = {}
        if "schema_migrations" in inspect(conn).get_table_names():
            log = MigrationRecord.__table__
            for revision, when in conn.execute(select(log.c.revision, log.c.applied_at).order_by(log.c.id)):
                applied_at.setdefault(revision, when if when.tzinfo else when.replace(tzinfo=timezone.utc))
    revisions = list(reversed(list(script.walk_revisions())))  # oldest first
    known = {r.revision for r in revisions}
    if current is not None and current not in known:
        raise InvarbenchError(
            f"the database is at schema revision '{current}', newer than this invarbench "
            f"{invarbench.__version__} knows (newest: {script.get_current_head()}): upgrade invarbench"
        )
    applied_revs = set()
    if current is not None:
        applied_revs = {r.revision for r in script.iterate_revisions(current, "base")}
    migrations = [
        Migration(
            r.revision,
            (r.doc or "").strip().splitlines()[0] if r.doc else "",
            r.revision in applied_revs,
            applied_at.get(r.revision),
        )
        for r in revisions
    ]
    return SchemaStatus(current=current, head=script.get_current_head() or "", legacy=legacy, migrations=migrations)


def upgrade(engine: Engine, target: str = "head") -> list[str]:
    """Apply the pending migrations up to ``target`` in one locked transaction; return their revisions."""
    now = status(engine)  # also refuses a database newer than this code
    if target == "head" and now.up_to_date:
        return []
    sqlite = engine.dialect.name == "sqlite"
    applied: list[tuple[str, str]] = []

    def record(*, step, **_kw) -> None:  # alembic's MigrationInfo
        if step.is_upgrade:
            applied.append((step.up_revision_id, step.up_revision.doc.strip().splitlines()[0]))

    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        if sqlite:
            # Re-creating a table (SQLite's way to ALTER a column) must not cascade into its children.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.execution_options(invarbench_begin="IMMEDIATE").begin():
                if not sqlite and engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                cfg = _config()
                cfg.attributes["connection"] = conn
                cfg.attributes["on_version_apply"] = [record]
                if _current(conn) is None and _is_legacy(conn):
                    command.stamp(cfg, "0001")
                    applied.clear()
                    applied.append(("0001", "adopted: tables made by invarbench 0.1.0 before migrations existed"))
                command.upgrade(cfg, target)
                if sqlite:
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if problems:
                        raise InvarbenchError(f"migration left dangling references: {problems[:5]}")
                if applied and "schema_migrations" in inspect(conn).get_table_names():
                    stamp = datetime.now(timezone.utc)
                    conn.execute(
                        MigrationRecord.__table__.insert(),
                        [
                            {
                                "revision": revision,
                                "description": description[:300],
                                "applied_at": stamp,
                                "invarbench_version": invarbench.__version__,
                            }
                            for revision, description in applied
                        ],
                    )
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")
    return [revision for revision, _ in applied]
