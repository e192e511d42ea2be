"""Supplies use cases, behind one facade: routes (api.py), consumers (handlers.py) and
periodic jobs (jobs.py) all call `SuppliesService`.

Each area lives in its own module, all standing on `stock.Stock` (the context, the locks and
the ledger line); none imports another area. A use case that writes takes
`uow: UnitOfWork | None = None`: a consumer passes its batch's, a route passes none.
"""

from __future__ import annotations

from supplies.alerts import Alerts
from supplies.catalog import Catalog
from supplies.moves import Moves
from supplies.reading import Reading
from supplies.reservations import Reservations
from supplies.stock import Key, Position

__all__ = ["Key", "Position", "SuppliesService"]


class SuppliesService(Catalog, Moves, Reservations, Alerts, Reading):
    """Catalog, moves in the ledger, reservations, alerts/expiry/transfers and reading."""
