"""The store's tables (SQLAlchemy 2.0 typed mappings), at the newest migration.

Numbers are stored as numbers. Every run carries its provenance: the card snapshot and its
hash, the model file's sha256 and Hub revision (``models``), and in ``runs`` one column per
field of :class:`invarbench.store.provenance.Provenance`, under the field's name (a test checks
that they agree): suite name, version, resolved settings and their hash, invarbench version and
git commit, torch version, device, model dtype, seed, batch size, examples, data and data digest.

The database is created and upgraded by the migrations in ``invarbench/store/migrations/``
(never by ``create_all``); a test checks that these mappings and the newest migration agree.
Changing a table here therefore means adding a migration there.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from invarbench.store.codec import decode_floats, encode_floats

RUN_STATUSES = ("running", "finished", "failed")


class ExactJSON(TypeDecorator):
    """JSON whose floats survive exactly, NaN and ±infinity included (strict JSON has neither).

    Floats are written by ``repr`` (the shortest text that reads back as the same double);
    non-finite floats are written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:  # noqa: ARG002 - the TypeDecorator interface
        return None if value is None else encode_floats(value)

    def process_result_value(self, value: Any, dialect) -> Any:  # noqa: ARG002 - the TypeDecorator interface
        return None if value is None else decode_floats(value)


class MetricFloat(TypeDecorator):
    """A metric's value: NaN (e.g. a statistic over no examples) is stored as NULL and read back as NaN.

    SQLite turns NaN into NULL by itself; doing it explicitly keeps both back-ends alike.
    """

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect) -> float | None:  # noqa: ARG002
        return None if value is None or math.isnan(value) else float(value)

    def process_result_value(self, value: float | None, dialect) -> float:  # noqa: ARG002
        return math.nan if value is None else float(value)


class Base(DeclarativeBase):
    pass


@dataclass(frozen=True)
class ModelSnapshot:
    """The evaluated model as the store keeps it, one :class:`ModelRecord`: the card's id, name, data set and
    training method, the card's sha256 and its text as read (``card_yaml``), the model file's sha256 as the
    loader verified it, and its Hub repository and 40-hex revision (None for a local file). A snapshot is
    identified by (``card_id``, ``card_sha256``, ``file_sha256``). The fields are in the order the results
    document writes them (:mod:`invarbench.store.documents`)."""

    card_id: str
    name: str
    dataset: str
    training_method: str
    card_sha256: str
    file_sha256: str
    hub_repo: str | None
    hub_revision: str | None
    card_yaml: str

    @classmethod
    def of(cls, record: ModelRecord) -> ModelSnapshot:
        """The snapshot a stored model row holds."""
        return cls(**{name: getattr(record, name) for name in MODEL_SNAPSHOT_FIELDS})

    def record(self) -> ModelRecord:
        """A new (unsaved) model row of this snapshot."""
        return ModelRecord(**asdict(self))


MODEL_SNAPSHOT_FIELDS = tuple(f.name for f in fields(ModelSnapshot))


class ModelRecord(Base):
    """One snapshot of a model: its card text and hash, the model file's hash and Hub revision."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("card_id", "card_sha256", "file_sha256", name="uq_models_snapshot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(300))
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    card_yaml: Mapped[str] = mapped_column(Text)
    card_sha256: Mapped[str] = mapped_column(String(64))
    file_sha256: Mapped[str] = mapped_column(String(64))
    hub_repo: Mapped[str | None] = mapped_column(String(300))
    hub_revision: Mapped[str | None] = mapped_column(String(40))
    training_method: Mapped[str] = mapped_column(String(50))

    runs: Mapped[list[RunRecord]] = relationship(back_populates="model")


class RunRecord(Base):
    """One evaluation of a model snapshot with a suite, with everything that produced its numbers."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("uid", name="uq_runs_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A globally unique id: what the JSON export and import use to recognise a run across databases.
    uid: Mapped[str] = mapped_column(String(36))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    suite_name: Mapped[str] = mapped_column(String(100))
    suite_version: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(100))
    invarbench_version: Mapped[str] = mapped_column(String(50))
    git_commit: Mapped[str | None] = mapped_column(String(40))
    torch_version: Mapped[str] = mapped_column(String(50))
    device: Mapped[str] = mapped_column(String(200))
    # The floating dtype the model computes in ("float32", "float16", "bfloat16"); NULL: not recorded
    # (runs stored before migration 0004).
    model_dtype: Mapped[str | None] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    examples_requested: Mapped[int] = mapped_column(Integer)
    examples_effective: Mapped[int] = mapped_column(Integer)
    # The suite version's full number of examples (its num_examples) when the run was made: a run over
    # fewer (``--limit``) is a smoke run, never ranked. NULL for runs stored before migration 0004.
    suite_num_examples: Mapped[int | None] = mapped_column(Integer)
    # NULL: the data set's own test split. Otherwise the custom evaluation set that replaced its
    # images (``--data npz:PATH``), as "npz:<path> sha256:<digest>"; such runs are never leaderboard rows.
    data_source: Mapped[str | None] = mapped_column(Text)
    # The suite's resolved settings (Suite.settings(): everything that changes a number) and their sha256
    # (hex, Suite.settings_hash()), which --resume matches. NULL for runs stored before migration 0005.
    suite_settings: Mapped[dict | None] = mapped_column(ExactJSON)
    suite_settings_hash: Mapped[str | None] = mapped_column(String(64))
    # The data digest of the examples evaluated ("v1:<sha256 hex>", invarbench.data.digests): a run whose digest is
    # its suite's expected digest is on the official split. NULL for runs stored before migration 0006.
    data_digest: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)  # running / finished / failed
    error: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list] = mapped_column(ExactJSON, default=list)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Seconds spent evaluating, summed over the attempts of a resumed run.
    duration_s: Mapped[float | None] = mapped_column(Float)
    # Peak memory in bytes: CUDA's max allocated on a GPU, the process's peak RSS on a CPU;
    # the largest over the attempts of a resumed run.
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # How many times the run was started: 1, plus one per --resume.
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # "host:pid" of the process that last worked on the run (tells --resume whether it is still alive).
    owner: Mapped[str | None] = mapped_column(String(200))
    # When that process last wrote to the run (start, each stored batch, the end).
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    model: Mapped[ModelRecord] = relationship(back_populates="runs")
    metrics: Mapped[list[MetricRecord]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="MetricRecord.id"
    )
    examples: Mapped[list[ExampleRecord]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        order_by=lambda: [ExampleRecord.measurement, ExampleRecord.batch_start],
    )
    artifacts: Mapped[list[ArtifactRecord]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="ArtifactRecord.name"
    )


class MetricRecord(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_metrics_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(MetricFloat, nullable=True)
    stderr: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)

    run: Mapped[RunRecord] = relationship(back_populates="metrics")


class ExampleRecord(Base):
    """Per-example values of one measurement for one batch of a run (a JSON list per field).

    All measurements of a batch are written in one transaction, so a batch is either complete
    or absent: that is what lets ``--resume`` skip it.
    """

    __tablename__ = "example_results"
    __table_args__ = (UniqueConstraint("run_id", "measurement", "batch_start", name="uq_examples_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    measurement: Mapped[str] = mapped_column(String(100))
    batch_start: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict] = mapped_column(ExactJSON)

    run: Mapped[RunRecord] = relationship(back_populates="examples")


class ArtifactRecord(Base):
    """A file the site shows for a run (an image strip, a plot), kept in the database itself."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_artifacts_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))  # a file name such as 'pgd_linf_examples.png'
    media_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    run: Mapped[RunRecord] = relationship(back_populates="artifacts")


class MigrationRecord(Base):
    """One applied migration: the schema's own history (the current revision is in alembic_version)."""

    __tablename__ = "schema_migrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(300))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    invarbench_version: Mapped[str] = mapped_column(String(50))
