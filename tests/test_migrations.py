"""Schema migrations: databases made by older versions are upgraded in place, with their data."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, create_engine, inspect, text
from store_helpers import add_model, db_url, first_schema_metadata, sqlite_url  # fixtures
from typer.testing import CliRunner

from invarbench.cli.app import app
from invarbench.errors import InvarbenchError
from invarbench.store import Store
from invarbench.store import migrate as migrations
from invarbench.store.schema import Base

runner = CliRunner()
T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def _insert_first_version_data(conn) -> None:  # a Connection
    """One model, a finished run with two metrics and per-example values, in the first schema's columns."""
    md = first_schema_metadata()
    models, runs, metrics, examples = (md.tables[n] for n in ("models", "runs", "metrics", "example_results"))
    conn.execute(
        models.insert().values(  # no explicit ids: PostgreSQL's sequences must count them
            card_id="toy/model",
            name="Toy",
            dataset="toy",
            card_yaml="id: toy/model\n",
            card_sha256="a" * 64,
            file_sha256="b" * 64,
            hub_repo=None,
            hub_revision=None,
            training_method="standard",
        )
    )
    conn.execute(
        runs.insert().values(
            model_id=1,
            suite_name="quick",
            suite_version=1,
            dataset="toy",
            invarbench_version="0.1.0",
            git_commit="c" * 40,
            torch_version="2.2",
            device="cpu",
            seed=0,
            batch_size=2,
            examples_requested=2,
            examples_effective=2,
            status="finished",
            error=None,
            flags=["slow"],
            started_at=T0,
            finished_at=T0,
            duration_s=1.25,
        )
    )
    conn.execute(
        metrics.insert(),
        [
            dict(run_id=1, name="clean_accuracy", value=0.1 + 0.2, stderr=0.5, ci_low=0.0, ci_high=1.0, n=2),
            dict(run_id=1, name="robust_accuracy_linf", value=0.0, stderr=0.0, ci_low=0.0, ci_high=0.8, n=2),
        ],
    )
    conn.execute(
        examples.insert().values(
            run_id=1, measurement="clean", batch_start=0, values={"correct": [True, False], "margin": [1 / 3, -2.5]}
        )
    )


def _assert_first_version_data_kept(store: Store) -> None:
    run = store.get_run(1)
    assert (run.model.card_id, run.status, run.flags, run.git_commit, run.duration_s) == (
        "toy/model",
        "finished",
        ["slow"],
        "c" * 40,
        1.25,
    )
    assert run.started_at.replace(tzinfo=timezone.utc) == T0 if run.started_at.tzinfo is None else run.started_at == T0
    assert [(m.name, m.value, m.stderr, m.ci_high) for m in run.metrics] == [
        ("clean_accuracy", 0.1 + 0.2, 0.5, 1.0),
        ("robust_accuracy_linf", 0.0, 0.0, 0.8),
    ]
    assert [(e.measurement, e.batch_start, e.values) for e in run.examples] == [
        ("clean", 0, {"correct": [True, False], "margin": [1 / 3, -2.5]})
    ]
    assert len(run.uid) == 36 and run.attempts == 1 and run.peak_memory_bytes is None and run.artifacts == []


def _migrate_to(url: str, revision: str) -> None:
    """What an older invarbench left: the database at ``revision`` only."""
    engine = Store(url, migrate_schema=False).engine
    with engine.connect() as conn, conn.begin():
        cfg = migrations._config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    engine.dispose()


def test_the_first_migration_makes_exactly_the_first_schema(db_url):
    _migrate_to(db_url, "0001")
    engine = Store(db_url, migrate_schema=False).engine
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), first_schema_metadata())
    assert [d for d in diff if d[0] != "remove_table" or d[1].name != "alembic_version"] == []


def test_the_newest_migration_matches_the_mappings(db_url):
    engine = Store(db_url).engine
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_a_database_at_the_first_migration_is_upgraded_with_its_data(db_url):
    _migrate_to(db_url, "0001")
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:
        _insert_first_version_data(conn)
    engine.dispose()
    before = Store(db_url, migrate_schema=False).schema_status()
    assert (before.current, [m.revision for m in before.pending]) == ("0001", ["0002", "0003", "0004", "0005", "0006"])

    store = Store(db_url)  # opening upgrades
    assert store.schema_status().up_to_date
    _assert_first_version_data_kept(store)
    # and the upgraded database takes the new columns and tables
    store.add_artifact(1, "strip.png", b"png")
    second = store.start_run(1, _prov())
    store.finish_run(second, [_Metric("ece", math.nan)], [], peak_memory_bytes=10)
    assert math.isnan(store.get_run(second).metrics[0].value)
    # runs stored before 0003 evaluated their data set's own test split; before 0004 no dtype was recorded
    assert (store.get_run(1).data_source, store.get_run(1).model_dtype, store.get_run(1).suite_num_examples) == (
        None,
        None,
        None,
    )
    custom = store.start_run(1, replace(_prov(), data_source="npz:/data/mine.npz sha256:" + "0" * 64))
    assert store.get_run(custom).data_source.startswith("npz:/data/mine.npz")


def test_a_database_at_0003_gets_the_model_dtype_and_the_suite_size_and_keeps_its_runs(db_url):
    _migrate_to(db_url, "0001")
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:
        _insert_first_version_data(conn)
    engine.dispose()
    older = Store(db_url, migrate_schema=False).engine
    assert migrations.upgrade(older, "0003") == ["0002", "0003"]  # what invarbench did when 0003 was the newest
    older.dispose()
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:  # a failed run as invarbench left it at 0003, to be resumed
        runs = Table("runs", MetaData(), autoload_with=conn)
        assert "model_dtype" not in runs.c and "suite_num_examples" not in runs.c
        old = _prov()
        conn.execute(
            runs.insert().values(
                uid="0" * 36,
                model_id=1,
                status="failed",
                error="boom",
                flags=[],
                started_at=T0,
                finished_at=T0,
                attempts=1,
                **{k: v for k, v in old.values().items() if k in runs.c},
            )
        )
    engine.dispose()
    assert Store(db_url, migrate_schema=False).schema_status().current == "0003"

    store = Store(db_url)  # opening upgrades to the newest
    assert store.schema_status().current == "0006"
    _assert_first_version_data_kept(store)
    with store.engine.connect() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns("runs")}
    assert columns["model_dtype"]["nullable"] and columns["suite_num_examples"]["nullable"]
    assert [(r.id, r.model_dtype, r.suite_num_examples, r.status) for r in store.list_runs()] == [
        (1, None, None, "finished"),
        (2, None, None, "failed"),
    ]
    # the old failed run resumes only with what it recorded: no dtype
    assert store.resume_run(1, replace(_prov(), model_dtype="float32")) is None
    resumed = store.resume_run(1, _prov())
    assert resumed is not None and resumed.run_id == 2
    new = store.start_run(1, replace(_prov(), model_dtype="bfloat16", suite_num_examples=6))
    assert (store.get_run(new).model_dtype, store.get_run(new).suite_num_examples) == ("bfloat16", 6)


def test_a_database_at_0004_gets_the_suite_settings_and_keeps_its_runs(db_url):
    _migrate_to(db_url, "0001")
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:
        _insert_first_version_data(conn)
    engine.dispose()
    older = Store(db_url, migrate_schema=False).engine
    assert migrations.upgrade(older, "0004") == ["0002", "0003", "0004"]  # what invarbench did when 0004 was newest
    older.dispose()
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:  # a failed run as invarbench left it at 0004, to be resumed
        runs = Table("runs", MetaData(), autoload_with=conn)
        assert "suite_settings" not in runs.c and "suite_settings_hash" not in runs.c
        old = replace(_prov(), model_dtype="float32", suite_num_examples=6)
        conn.execute(
            runs.insert().values(
                uid="0" * 36,
                model_id=1,
                status="failed",
                error="boom",
                flags=[],
                started_at=T0,
                finished_at=T0,
                attempts=1,
                **{k: v for k, v in old.values().items() if k in runs.c},
            )
        )
    engine.dispose()

    store = Store(db_url)  # opening upgrades to the newest
    assert store.schema_status().current == "0006"
    _assert_first_version_data_kept(store)
    with store.engine.connect() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns("runs")}
    assert columns["suite_settings"]["nullable"] and columns["suite_settings_hash"]["nullable"]
    assert [(r.id, r.suite_settings, r.suite_settings_hash, r.model_dtype) for r in store.list_runs()] == [
        (1, None, None, None),
        (2, None, None, "float32"),
    ]
    # the old failed run recorded no suite settings: a run that records them does not continue it
    settings = {"suite_settings": {"seed": 0, "eps": 0.3}, "suite_settings_hash": "e" * 64}
    assert store.resume_run(1, replace(old, **settings)) is None
    resumed = store.resume_run(1, old)
    assert resumed is not None and resumed.run_id == 2
    new = store.start_run(1, replace(old, **settings))
    assert (store.get_run(new).suite_settings, store.get_run(new).suite_settings_hash) == (
        {"seed": 0, "eps": 0.3},
        "e" * 64,
    )


def test_a_database_at_0005_gets_the_data_digest_and_keeps_its_runs(db_url):
    _migrate_to(db_url, "0001")
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:
        _insert_first_version_data(conn)
    engine.dispose()
    older = Store(db_url, migrate_schema=False).engine
    assert migrations.upgrade(older, "0005") == ["0002", "0003", "0004", "0005"]  # invarbench when 0005 was newest
    older.dispose()
    old = replace(
        _prov(), model_dtype="float32", suite_num_examples=6, suite_settings={"seed": 0}, suite_settings_hash="e" * 64
    )
    engine = create_engine(Store(db_url, migrate_schema=False).engine.url)
    with engine.begin() as conn:  # a failed run as invarbench left it at 0005, to be resumed
        runs = Table("runs", MetaData(), autoload_with=conn)
        assert "data_digest" not in runs.c
        conn.execute(
            runs.insert().values(
                uid="0" * 36,
                model_id=1,
                status="failed",
                error="boom",
                flags=[],
                started_at=T0,
                finished_at=T0,
                attempts=1,
                **{k: v for k, v in old.values().items() if k in runs.c},
            )
        )
    engine.dispose()

    store = Store(db_url)  # opening upgrades to 0006
    assert store.schema_status().current == "0006"
    _assert_first_version_data_kept(store)
    with store.engine.connect() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns("runs")}
    assert columns["data_digest"]["nullable"]
    assert [(r.id, r.data_digest, r.suite_settings_hash) for r in store.list_runs()] == [
        (1, None, None),
        (2, None, "e" * 64),
    ]
    # the old failed run recorded no digest: a run that records one does not continue it
    digest = "v1:" + "a" * 64
    assert store.resume_run(1, replace(old, data_digest=digest)) is None
    resumed = store.resume_run(1, old)
    assert resumed is not None and resumed.run_id == 2
    new = store.start_run(1, replace(old, data_digest=digest))
    assert store.get_run(new).data_digest == digest


def test_a_database_made_before_migrations_existed_is_adopted_and_upgraded(sqlite_url):
    engine = create_engine(sqlite_url)
    first_schema_metadata().create_all(engine)  # what invarbench 0.1.0's Store() did
    with engine.begin() as conn:
        _insert_first_version_data(conn)
    engine.dispose()
    status = Store(sqlite_url, migrate_schema=False).schema_status()
    assert (status.current, status.legacy) == (None, True)

    result = runner.invoke(app, ["db", "upgrade", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"Upgraded {sqlite_url} to schema revision 0006 (applied 0001, 0002, 0003, 0004, 0005, 0006)."
    )
    store = Store(sqlite_url)
    _assert_first_version_data_kept(store)
    status = store.schema_status()
    assert [(m.revision, m.applied, m.applied_at is not None) for m in status.migrations] == [
        ("0001", True, True),
        ("0002", True, True),
        ("0003", True, True),
        ("0004", True, True),
        ("0005", True, True),
        ("0006", True, True),
    ]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def test_db_status_shows_pending_migrations_and_changes_nothing(sqlite_url):
    _migrate_to(sqlite_url, "0001")
    result = runner.invoke(app, ["db", "status", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert f"Database: {sqlite_url}" in result.output
    assert "Schema revision: 0001; newest: 0006" in result.output
    assert "5 migration(s) pending: run 'invarbench db upgrade'" in result.output
    assert Store(sqlite_url, migrate_schema=False).schema_status().current == "0001"

    assert runner.invoke(app, ["db", "upgrade", "--db", sqlite_url]).output.strip() == (
        f"Upgraded {sqlite_url} to schema revision 0006 (applied 0002, 0003, 0004, 0005, 0006)."
    )
    again = runner.invoke(app, ["db", "upgrade", "--db", sqlite_url])
    assert again.output.strip() == f"{sqlite_url} is already at the newest schema revision 0006."
    assert "Up to date." in runner.invoke(app, ["db", "status", "--db", sqlite_url]).output


def test_a_database_from_a_newer_invarbench_is_refused(sqlite_url):
    store = Store(sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(InvarbenchError, match="schema revision '0099', newer than this invarbench"):
        Store(sqlite_url)
    result = runner.invoke(app, ["results", "list", "--db", sqlite_url])
    assert result.exit_code == 1
    assert result.output.startswith("Error: the database is at schema revision '0099', newer than this invarbench")


def test_tables_that_invarbench_did_not_make_are_not_touched(sqlite_url):
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE models (id INTEGER PRIMARY KEY, other TEXT)"))
    with pytest.raises(InvarbenchError, match="the database has a 'models' table that invarbench did not make"):
        Store(sqlite_url)
    assert inspect(engine).get_table_names() == ["models"]


def test_migrations_are_append_only_and_numbered():
    revisions = [m.revision for m in Store("sqlite://").schema_status().migrations]
    assert revisions == [f"{i:04d}" for i in range(1, len(revisions) + 1)]
    files = sorted(p.name for p in (migrations.MIGRATIONS_DIR / "versions").glob("0*.py"))
    assert [f[:4] for f in files] == revisions


def _prov():
    from store_helpers import provenance

    return provenance()


class _Metric:
    def __init__(self, name: str, value: float) -> None:
        self.name, self.value, self.stderr, self.ci_low, self.ci_high, self.n = name, value, None, None, None, 1
