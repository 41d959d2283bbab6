"""The store's tables (SQLAlchemy 2.0 typed mappings), at the newest migration.

Numbers are stored as numbers. Every run carries its provenance: the card snapshot and its
hash, the model file's sha256 and Hub revision, suite name and version, invarbench version and
git commit, torch version, device, seed and batch size.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class ModelRecord(Base):
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
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    suite_name: Mapped[str] = mapped_column(String(100))
    suite_version: Mapped[int] = mapped_column(Integer)
    dataset: Mapped[str] = mapped_column(String(100))
    invarbench_version: Mapped[str] = mapped_column(String(50))
    git_commit: Mapped[str | None] = mapped_column(String(40))
    torch_version: Mapped[str] = mapped_column(String(50))
    device: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    examples_requested: Mapped[int] = mapped_column(Integer)
    examples_effective: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), index=True)  # running / finished / failed
    error: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)

    model: Mapped[ModelRecord] = relationship(back_populates="runs")
    metrics: Mapped[list[MetricRecord]] = relationship(back_populates="run", cascade="all, delete-orphan")
    examples: Mapped[list[ExampleRecord]] = relationship(back_populates="run", cascade="all, delete-orphan")


class MetricRecord(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_metrics_run_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)

    run: Mapped[RunRecord] = relationship(back_populates="metrics")


class ExampleRecord(Base):
    """Per-example values of one measurement for one batch of a run (a JSON list per field)."""

    __tablename__ = "example_results"
    __table_args__ = (UniqueConstraint("run_id", "measurement", "batch_start", name="uq_examples_batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    measurement: Mapped[str] = mapped_column(String(100))
    batch_start: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict] = mapped_column(JSON)

    run: Mapped[RunRecord] = relationship(back_populates="examples")
