"""escalation: levels counted per opening of a ticket, unique (ticket_id, opening, level)

A reopened ticket that misses its new deadlines climbs the supervisor chain again from
level 1; before, a ticket that had reached the top level was never escalated again.
Existing rows belong to their ticket's first opening (0).

Revision ID: 1da34edc1e58
Revises: e40bf37ddf80
Create Date: 2026-12-03 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1da34edc1e58"
down_revision: str | None = "e40bf37ddf80"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opening", sa.Integer(), server_default="0", nullable=False))
        batch_op.drop_constraint("uq_escalation_level", type_="unique")
        batch_op.create_unique_constraint("uq_escalation_level", ["ticket_id", "opening", "level"])


def downgrade() -> None:
    # The older schema has one row per (ticket, level): the later openings' rows cannot stay.
    op.execute("DELETE FROM escalation WHERE opening > 0")
    with op.batch_alter_table("escalation", schema=None) as batch_op:
        batch_op.drop_constraint("uq_escalation_level", type_="unique")
        batch_op.create_unique_constraint("uq_escalation_level", ["ticket_id", "level"])
        batch_op.drop_column("opening")
