"""the model's floating dtype and the suite's full number of examples, per run

- ``runs.model_dtype``: the floating dtype the model computes in ("float32", "float16",
  "bfloat16"); NULL for every run stored before this migration (not recorded). Resumption
  matches it.
- ``runs.suite_num_examples``: the suite version's full number of examples when the run was
  made; a run over fewer examples (``--limit``) is a smoke run, never ranked on the leaderboard.
  NULL for runs stored before this migration (the store then falls back on the suite files, see
  ``Store.full_examples``).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("model_dtype", sa.String(20), nullable=True))
    op.add_column("runs", sa.Column("suite_num_examples", sa.Integer(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the store's migrations only go forward")
