"""the data digest of the examples a run evaluated

- ``runs.data_digest``: ``"v1:<sha256 hex>"`` of the evaluated examples' uint8 images (NCHW) and
  int64 labels, in order (``invarbench.data.digests``, defined in docs/datasets.md). A finished
  run whose digest equals its suite's expected digest is a run on the official split, whatever
  file it read (the data set's own files, a copy holding only a prefix of the split, or an
  ``npz:`` set); one with another digest is listed apart as custom data.

NULL for every run stored before this migration (not recorded): such a run stands as before, by
its data source alone.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("data_digest", sa.String(100), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the store's migrations only go forward")
