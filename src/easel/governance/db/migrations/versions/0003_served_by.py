"""Usage records say which served model answered a request (overflow, fallback, an upstream)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("served_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_records", "served_by")
