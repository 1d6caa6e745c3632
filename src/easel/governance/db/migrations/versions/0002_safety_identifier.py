"""Usage records keep the request's safety identifier (CONTRACT §8)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("safety_identifier", sa.String(length=256), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_records", "safety_identifier")
