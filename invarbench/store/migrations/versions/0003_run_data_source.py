"""the evaluation data of a run: its data set's test split, or a custom ``--data npz:`` set

- ``runs.data_source``: NULL for the data set's own test split (every run stored before this
  migration), else "npz:<path> sha256:<digest>" of the custom evaluation set that replaced the
  data set's images. Resumption matches it, and such runs are never leaderboard rows.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("data_source", sa.Text(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the store's migrations only go forward")
