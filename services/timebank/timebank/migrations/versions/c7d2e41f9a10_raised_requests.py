"""raised_request: the requests dispatch raised, the only ones a fulfilment credits; minutes over a cap wait for approval

Revision ID: c7d2e41f9a10
Revises: a3ef9b5d2b65
Create Date: 2026-12-03 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import common.db

revision: str = "c7d2e41f9a10"
down_revision: str | None = "a3ef9b5d2b65"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "raised_request",
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
        sa.Column("raised_at", common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("volunteer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("service_minutes", sa.Integer(), nullable=True),
        sa.Column("reviewed_by", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
    )
    with op.batch_alter_table("raised_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_raised_request_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("raised_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_raised_request_status"))
    op.drop_table("raised_request")
