"""Jobs a script can rely on: progress (phase, bytes) and idempotency keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 03:00:02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("phase", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("bytes_done", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("bytes_total", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("transfer_started_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.add_column(sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("request_fingerprint", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_jobs_idempotency_key"), ["idempotency_key"],
                           unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index(batch.f("ix_jobs_idempotency_key"))
        for column in ("request_fingerprint", "idempotency_key", "progress_at",
                       "transfer_started_at", "bytes_total", "bytes_done", "phase"):
            batch.drop_column(column)
