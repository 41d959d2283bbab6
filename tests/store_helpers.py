"""Shared pieces of the store tests: the two back-ends, the first schema frozen, sample data.

The store tests run on SQLite always and on PostgreSQL when ``INVARBENCH_TEST_PG_URL`` points
at a server (``.ci/start-postgres.sh`` starts one); each PostgreSQL test gets a database of its
own, created on that server and dropped after.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    text,
)
from sqlalchemy.engine import make_url

from invarbench.store import Provenance, Store

PG_ENV = "INVARBENCH_TEST_PG_URL"
REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgresql")


# --- back-ends -----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def pg_server_url() -> str | None:
    """The test server's URL when it answers, else None."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        return None
    url = make_url(raw).set(drivername="postgresql+psycopg")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception:  # noqa: BLE001 - unreachable, refused, driver missing: the PostgreSQL tests skip
        return None
    return url.render_as_string(hide_password=False)


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on ``backend`` (skips when PostgreSQL is not available)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server = pg_server_url()
    if server is None:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV} (e.g. $(bash .ci/start-postgres.sh))")
    name = f"ib_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> Iterator[str]:
    """A new database on each back-end in turn."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def fabricated(monkeypatch):
    """For tests that import made-up runs (metrics that do not follow from their per-example values, a toy
    card): the results door (invarbench.store.document_checks, tested in tests/test_hostile_results.py)
    refuses them, so these tests of the format, its round trip and its own checks let them through it."""
    monkeypatch.setattr("invarbench.store.results_files.check_document", lambda doc, source, **_: None)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


# --- the first schema, frozen ----------------------------------------------------------------------
def first_schema_metadata() -> MetaData:
    """The tables exactly as invarbench 0.1.0's ``Base.metadata.create_all`` made them (before migrations)."""
    md = MetaData()
    Table(
        "models",
        md,
        Column("id", Integer, primary_key=True),
        Column("card_id", String(200), nullable=False, index=True),
        Column("name", String(300), nullable=False),
        Column("dataset", String(100), nullable=False, index=True),
        Column("card_yaml", Text, nullable=False),
        Column("card_sha256", String(64), nullable=False),
        Column("file_sha256", String(64), nullable=False),
        Column("hub_repo", String(300)),
        Column("hub_revision", String(40)),
        Column("training_method", String(50), nullable=False),
        UniqueConstraint("card_id", "card_sha256", "file_sha256", name="uq_models_snapshot"),
    )
    Table(
        "runs",
        md,
        Column("id", Integer, primary_key=True),
        Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
        Column("suite_name", String(100), nullable=False),
        Column("suite_version", Integer, nullable=False),
        Column("dataset", String(100), nullable=False),
        Column("invarbench_version", String(50), nullable=False),
        Column("git_commit", String(40)),
        Column("torch_version", String(50), nullable=False),
        Column("device", String(200), nullable=False),
        Column("seed", Integer, nullable=False),
        Column("batch_size", Integer, nullable=False),
        Column("examples_requested", Integer, nullable=False),
        Column("examples_effective", Integer, nullable=False),
        Column("status", String(20), nullable=False, index=True),
        Column("error", Text),
        Column("flags", JSON, nullable=False),
        Column("started_at", DateTime(timezone=True), nullable=False),
        Column("finished_at", DateTime(timezone=True)),
        Column("duration_s", Float),
    )
    Table(
        "metrics",
        md,
        Column("id", Integer, primary_key=True),
        Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("name", String(100), nullable=False),
        Column("value", Float, nullable=False),
        Column("stderr", Float),
        Column("ci_low", Float),
        Column("ci_high", Float),
        Column("n", Integer, nullable=False),
        UniqueConstraint("run_id", "name", name="uq_metrics_run_name"),
    )
    Table(
        "example_results",
        md,
        Column("id", Integer, primary_key=True),
        Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("measurement", String(100), nullable=False),
        Column("batch_start", Integer, nullable=False),
        Column("values", JSON, nullable=False),
        UniqueConstraint("run_id", "measurement", "batch_start", name="uq_examples_batch"),
    )
    return md


# --- sample data ---------------------------------------------------------------------------------
SHA_A = "a" * 64
SHA_B = "b" * 64


def add_model(store: Store, card_id: str = "toy/model", card_sha256: str = SHA_A) -> int:
    return store.upsert_model(
        card_id=card_id,
        name="A toy model",
        dataset="toy",
        card_yaml="id: toy/model\n",
        card_sha256=card_sha256,
        file_sha256=SHA_B,
        hub_repo=None,
        hub_revision=None,
        training_method="standard",
    )


def provenance(**changes) -> Provenance:
    """A toy run's provenance; the fields that format version 1 did not have are None unless given (as for a
    run stored before migrations 0004, 0005 and 0006)."""
    fields = dict(
        suite_name="quick",
        suite_version=1,
        dataset="toy",
        invarbench_version="0.1.0",
        git_commit=None,
        torch_version="2.0",
        device="cpu",
        seed=0,
        batch_size=2,
        examples_requested=6,
        examples_effective=6,
        suite_num_examples=None,
        data_source=None,
        model_dtype=None,
        suite_settings=None,
        suite_settings_hash=None,
        data_digest=None,
    )
    fields.update(changes)
    return Provenance(**fields)


# Resolved settings of a made-up toy suite: nested, with floats that need all 17 digits and a subnormal.
TOY_SETTINGS = {
    "dataset": "toy",
    "num_examples": 6,
    "seed": 0,
    "measurements": {"pgd_linf": {"eps": 0.1 + 0.2, "steps": 10, "radii": [2.5, 5e-324], "alpha": None}},
}


def settings_fields(settings: dict | None = None) -> dict:
    """The provenance fields that record a suite's resolved settings (default :data:`TOY_SETTINGS`) and their
    hash, hashed as ``Suite.settings_hash`` does."""
    settings = TOY_SETTINGS if settings is None else settings
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return {"suite_settings": settings, "suite_settings_hash": hashlib.sha256(text.encode()).hexdigest()}


def settings_of(suite) -> dict:  # a Suite
    """The provenance fields that record ``suite``'s resolved settings, as the runner fills them."""
    return {"suite_settings": suite.settings(), "suite_settings_hash": suite.settings_hash()}


def metric(name: str, value: float, stderr: float | None = None, ci: tuple | None = None, n: int = 6):
    """A MetricValue look-alike (the store only reads its attributes; no torch import needed)."""
    lo, hi = ci if ci else (None, None)
    return SimpleNamespace(name=name, value=value, stderr=stderr, ci_low=lo, ci_high=hi, n=n)


def batch_values(start: int) -> dict[str, dict[str, list]]:
    """Two measurements of a 2-example batch, with floats that need all 17 digits, and NaN/inf."""
    return {
        "clean": {"label": [start % 10, (start + 1) % 10], "correct": [True, start % 4 == 0]},
        "pgd_linf": {"distance": [0.1 + 0.2 + start, float("inf") if start == 2 else 1 / 3], "flag": [None, 1e-310]},
    }
