"""Time-bank use cases, behind one facade: routes (api.py) and consumers (handlers.py) call
`TimebankService`.

Each area lives in its own module on `ledger.Ledger` (posting transfers, earning); none
imports another area. A use case that writes takes `uow: UnitOfWork | None = None`: a
consumer passes the unit of work it records the event in, so the effect and the inbox commit
together; a route passes none.
"""

from __future__ import annotations

from functools import cached_property

from timebank.coupons import Coupons, coupon_view, offer_view
from timebank.members import Members
from timebank.privacy import Privacy
from timebank.reading import Reading
from timebank.redemptions import Redemptions, redemption_view

__all__ = ["TimebankService", "coupon_view", "offer_view", "redemption_view"]


class TimebankService(Members, Redemptions, Coupons, Reading):
    """Members, the ledger, redemptions, coupons and rewards, and reading."""

    @cached_property
    def privacy(self) -> Privacy:
        """Erasing a resident who is a member."""
        return Privacy(self.runtime)
