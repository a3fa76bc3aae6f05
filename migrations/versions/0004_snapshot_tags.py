"""User tags on snapshots (``{"release": "v1.4.2"}``), kept in the manifest too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 03:00:01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        # Existing snapshots have no tags: the server default fills them in.
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False,
                                   server_default=sa.text("'{}'")))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("tags")
