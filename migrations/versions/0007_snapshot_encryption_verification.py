"""Snapshots record their encryption (format and recipients' fingerprints) and
their last verified restore (when, and its outcome with the figures compared).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("encryption", sa.String(length=32), nullable=True))
        # Existing snapshots are plain: no recipients.
        batch.add_column(sa.Column("recipients", sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("verification", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("verification")
        batch.drop_column("verified_at")
        batch.drop_column("recipients")
        batch.drop_column("encryption")
