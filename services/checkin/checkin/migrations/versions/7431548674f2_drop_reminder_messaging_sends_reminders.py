"""drop reminder: the messaging service sends the check-in reminder and keeps its record

Revision ID: 7431548674f2
Revises: 29a69e11d39f
Create Date: 2026-12-03 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import common.db

revision: str = "7431548674f2"
down_revision: str | None = "29a69e11d39f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("reminder")


def downgrade() -> None:
    # The table comes back empty: the reminders sent meanwhile are in messaging's record.
    op.create_table(
        "reminder",
        sa.Column("reminder_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reminder_id"),
        sa.UniqueConstraint("resident_id", "date", name="uq_reminder"),
    )
