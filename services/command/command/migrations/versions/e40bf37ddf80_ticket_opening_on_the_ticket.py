"""ticket: who opened it and its first owner on the ticket; no "open" row in ticket_log

The history's "open" entry is derived from the ticket (service._opening), so a sweep writes
one row less per ticket. Existing "open" rows move into the two columns.

Revision ID: e40bf37ddf80
Revises: e09cd1d39cf6
Create Date: 2026-11-28 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "e40bf37ddf80"
down_revision: str | None = "e09cd1d39cf6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIRST_OPEN = "SELECT l.{column} FROM ticket_log l WHERE l.ticket_id = ticket.ticket_id AND l.action = 'open' ORDER BY l.log_id LIMIT 1"


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_by", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True))
        batch_op.add_column(sa.Column("opened_owner", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True))
    opened_by, opened_owner = _FIRST_OPEN.format(column='"by"'), _FIRST_OPEN.format(column="owner")
    op.execute(f"UPDATE ticket SET opened_by = ({opened_by}), opened_owner = ({opened_owner})")
    op.execute("DELETE FROM ticket_log WHERE action = 'open'")


def downgrade() -> None:
    # The "open" rows come back after the other rows of their tickets (new log ids): the
    # previous code orders a history by log id, so it shows the opening last.
    op.execute(
        'INSERT INTO ticket_log (ticket_id, action, from_stage, to_stage, "by", at, note, owner, satisfaction, event_id) '
        "SELECT ticket_id, 'open', NULL, 'discovered', COALESCE(opened_by, reported_by, 'unknown'), opened_at, "
        "description, COALESCE(opened_owner, owner), NULL, NULL FROM ticket "
        "WHERE NOT EXISTS (SELECT 1 FROM ticket_log l WHERE l.ticket_id = ticket.ticket_id AND l.action = 'open') "
        "ORDER BY opened_at"
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("opened_owner")
        batch_op.drop_column("opened_by")
