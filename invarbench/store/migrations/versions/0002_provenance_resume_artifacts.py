"""run uid, peak memory, attempts and owner (for --resume); NaN metric values; artifacts; migration log

- ``runs.uid``: a globally unique id per run (export/import); existing runs get a fresh one.
- ``runs.peak_memory_bytes``, ``runs.attempts`` (1 + resumes), ``runs.owner`` ("host:pid") and
  ``runs.updated_at`` (its last write), which tell ``--resume`` whether a running run is alive.
- ``metrics.value`` becomes nullable: NULL stores NaN (a statistic over no examples).
- ``artifacts``: files the site shows for a run, stored in the database.
- ``schema_migrations``: when each migration was applied, by which invarbench.

Revision ID: 0002
Revises: 0001
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("uid", sa.String(36), nullable=True))
    op.add_column("runs", sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True))
    op.add_column("runs", sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("runs", sa.Column("owner", sa.String(200), nullable=True))
    op.add_column("runs", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))

    bind = op.get_bind()
    runs = sa.table("runs", sa.column("id", sa.Integer()), sa.column("uid", sa.String(36)))
    for (run_id,) in bind.execute(sa.select(runs.c.id)).all():
        bind.execute(sa.update(runs).where(runs.c.id == run_id).values(uid=str(uuid.uuid4())))

    with op.batch_alter_table("runs") as batch:
        batch.alter_column("uid", existing_type=sa.String(36), nullable=False)
        batch.create_unique_constraint("uq_runs_uid", ["uid"])

    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("value", existing_type=sa.Float(), nullable=True)

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "name", name="uq_artifacts_run_name"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_artifacts_run_id", "artifacts", ["run_id"])

    op.create_table(
        "schema_migrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.String(32), nullable=False),
        sa.Column("description", sa.String(300), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invarbench_version", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    raise NotImplementedError("the store's migrations only go forward")
