"""The fleet's work: jobs name their host, carry a request another daemon queued
and a lease their host's heartbeats renew; scheduled runs claim their slot.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("host", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("request", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True),
                                   nullable=True))
        batch.create_index(batch.f("ix_jobs_host"), ["host"], unique=False)
        batch.create_index(batch.f("ix_jobs_lease_expires_at"), ["lease_expires_at"],
                           unique=False)
    op.create_table(
        "schedule_slots",
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instance", "kind", "slot", name=op.f("pk_schedule_slots")),
    )
    op.create_index(op.f("ix_schedule_slots_claimed_at"), "schedule_slots", ["claimed_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_schedule_slots_claimed_at"), table_name="schedule_slots")
    op.drop_table("schedule_slots")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index(batch.f("ix_jobs_lease_expires_at"))
        batch.drop_index(batch.f("ix_jobs_host"))
        batch.drop_column("lease_expires_at")
        batch.drop_column("request")
        batch.drop_column("host")
