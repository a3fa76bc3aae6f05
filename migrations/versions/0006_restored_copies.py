"""Copies: the containers restores created, with their volumes and optional expiry.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 03:00:03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "copies",
        sa.Column("container_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("snapshot_id", sa.String(length=128), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.String(length=128), nullable=True),
        sa.Column("volumes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removal_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("container_id", name=op.f("pk_copies")),
    )
    with op.batch_alter_table("copies") as batch:
        batch.create_index(batch.f("ix_copies_expires_at"), ["expires_at"], unique=False)
        batch.create_index(batch.f("ix_copies_name"), ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("copies") as batch:
        batch.drop_index(batch.f("ix_copies_name"))
        batch.drop_index(batch.f("ix_copies_expires_at"))
    op.drop_table("copies")
