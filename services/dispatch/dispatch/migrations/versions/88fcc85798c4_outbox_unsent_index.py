"""outbox: an index of the unsent rows only; event_id no longer unique

The relay reads the head of the unsent rows and marks them sent. The old index on
(sent_at, seq) kept an entry for every row ever sent, and marking a row added one; the
unique index on event_id (random UUIDs, never looked up) cost as much again on every write
and every mark. Issue 3, fourth session: see docs/performance.md.

Revision ID: 88fcc85798c4
Revises: 800ef0885da8
Create Date: 2026-11-28 09:45:00.000000
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import common.db


revision: str = '88fcc85798c4'
down_revision: Union[str, None] = '800ef0885da8'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNSENT = sa.text('sent_at IS NULL')


def _outbox(*constraints) -> sa.Table:
    """The table as the initial schema made it, without its indexes: SQLite alters a table by
    copying it, and cannot name the unnamed unique constraint to leave out."""
    return sa.Table(
        'outbox', sa.MetaData(),
        sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True),
        sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('created_at', common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', common.db.UTCDateTime(timezone=True), nullable=True),
        *constraints,
    )


def upgrade() -> None:
    if op.get_context().dialect.name == 'sqlite':
        with op.batch_alter_table('outbox', copy_from=_outbox(), recreate='always'):
            pass  # the copy has neither the unique constraint nor the old index
    else:
        op.drop_index('ix_outbox_unsent', table_name='outbox')
        op.drop_constraint('outbox_event_id_key', 'outbox', type_='unique')
    op.create_index('ix_outbox_unsent', 'outbox', ['seq'], postgresql_where=UNSENT, sqlite_where=UNSENT)


def downgrade() -> None:
    op.drop_index('ix_outbox_unsent', table_name='outbox')
    if op.get_context().dialect.name == 'sqlite':
        with op.batch_alter_table('outbox', copy_from=_outbox(sa.UniqueConstraint('event_id')), recreate='always'):
            pass
    else:
        op.create_unique_constraint('outbox_event_id_key', 'outbox', ['event_id'])
    op.create_index('ix_outbox_unsent', 'outbox', ['sent_at', 'seq'], unique=False)
