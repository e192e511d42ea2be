"""Migration steps of the tables every service shares (the outbox and the inbox, defined in
common.outbox): each service's own Alembic history calls them in a revision of its own.

A step is frozen once released: a later change is a new step, never an edit of this one,
so that a database upgraded before and one upgraded after end up the same.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import common.db

# -- outbox: an index of the unsent rows only; event_id not unique --
#
# The relay reads the head of the unsent rows and marks them sent: an index of every row ever
# sent, and a unique index of random ids nobody looks up, only slowed each write and mark.

_OUTBOX_UNSENT = sa.text("sent_at IS NULL")


def _outbox_as_first_made(*constraints) -> sa.Table:
    """The table as the initial schema made it, without its indexes: SQLite alters a table by
    copying it, and cannot name the unnamed unique constraint to leave out."""
    return sa.Table(
        "outbox",
        sa.MetaData(),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", common.db.UTCDateTime(timezone=True), nullable=True),
        *constraints,
    )


def outbox_unsent_index_upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("outbox", copy_from=_outbox_as_first_made(), recreate="always"):
            pass  # the copy has neither the unique constraint nor the old index
    else:
        op.drop_index("ix_outbox_unsent", table_name="outbox")
        op.drop_constraint("outbox_event_id_key", "outbox", type_="unique")
    op.create_index("ix_outbox_unsent", "outbox", ["seq"], postgresql_where=_OUTBOX_UNSENT, sqlite_where=_OUTBOX_UNSENT)


def outbox_unsent_index_downgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table(
            "outbox", copy_from=_outbox_as_first_made(sa.UniqueConstraint("event_id")), recreate="always"
        ):
            pass
    else:
        op.create_unique_constraint("outbox_event_id_key", "outbox", ["event_id"])
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "seq"], unique=False)
