"""the suite's resolved settings and their hash, per run

- ``runs.suite_settings``: the suite's resolved settings when the run was made
  (``Suite.settings()``: data set, examples, seed, checks and every measurement's settings), as
  JSON with exact floats.
- ``runs.suite_settings_hash``: their sha256 (hex, ``Suite.settings_hash()``). Resumption
  matches it: ``--resume`` continues only a run measured with the very same settings.

Both are NULL for every run stored before this migration (not recorded); such a run resumes only
with a provenance that records none.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("suite_settings", sa.JSON(), nullable=True))
    op.add_column("runs", sa.Column("suite_settings_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the store's migrations only go forward")
