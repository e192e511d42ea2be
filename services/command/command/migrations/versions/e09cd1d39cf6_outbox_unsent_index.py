"""outbox: an index of the unsent rows only; event_id no longer unique (common/migration_steps.py)

Revision ID: e09cd1d39cf6
Revises: 8814169f69f2
Create Date: 2026-11-28 09:45:00.000000
"""

from collections.abc import Sequence

from common.migration_steps import outbox_unsent_index_downgrade, outbox_unsent_index_upgrade

revision: str = "e09cd1d39cf6"
down_revision: str | None = "8814169f69f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_unsent_index_upgrade()  # the same step in every service: see common/migration_steps.py


def downgrade() -> None:
    outbox_unsent_index_downgrade()
