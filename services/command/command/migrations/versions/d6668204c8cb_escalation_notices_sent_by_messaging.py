"""escalation: drop notified_at, notify_attempts, last_error (messaging sends the notice)

The messaging service tells the new owner from TicketEscalated and keeps the record of it.

Revision ID: d6668204c8cb
Revises: 1da34edc1e58
Create Date: 2026-12-03 22:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import common.db

revision: str = "d6668204c8cb"
down_revision: str | None = "1da34edc1e58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("notify_attempts")
        batch_op.drop_column("notified_at")


def downgrade() -> None:
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notified_at", common.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("notify_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    # Messaging already told these owners: the older code must not notify them a second time.
    op.execute("UPDATE escalation SET notified_at = at, notify_attempts = 1")
