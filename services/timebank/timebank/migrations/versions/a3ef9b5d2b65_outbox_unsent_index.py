"""outbox: an index of the unsent rows only; event_id no longer unique (common/migration_steps.py)

Revision ID: a3ef9b5d2b65
Revises: 46d080d81bbd
Create Date: 2026-11-28 09:45:00.000000
"""

from collections.abc import Sequence

from common.migration_steps import outbox_unsent_index_downgrade, outbox_unsent_index_upgrade

revision: str = "a3ef9b5d2b65"
down_revision: str | None = "46d080d81bbd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_unsent_index_upgrade()  # the same step in every service: see common/migration_steps.py


def downgrade() -> None:
    outbox_unsent_index_downgrade()
