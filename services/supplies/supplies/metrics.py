"""Supplies figures for Prometheus (`firstline_supplies_...`), computed from this service's
database by a periodic refresh with the same assessment as `GET /stock/alerts`. Labels are
items and depots of the catalog: bounded.
"""

from __future__ import annotations

from sqlalchemy import func, select

from common.metrics import DomainMetrics, Family, Values
from common.runtime import Runtime
from supplies.models import Depot, Movement, Reservation, TransferSuggestion
from supplies.service import SuppliesService

REFRESH_INTERVAL_S = 10.0
POSITION = ("depot_id", "depot", "item_id", "item", "category")
STATES = ("ok", "low", "out")


class SuppliesMetrics:
    def __init__(self, runtime: Runtime, service: SuppliesService) -> None:
        self.runtime = runtime
        self.service = service
        m = self.domain = DomainMetrics(runtime.registry, "supplies")
        self.on_hand = m.gauge(
            "firstline_supplies_stock_on_hand", "Units physically at the depot (expired included)", POSITION
        )
        self.available = m.gauge(
            "firstline_supplies_stock_available", "Units that can be issued: unexpired and not reserved", POSITION
        )
        self.reserved = m.gauge("firstline_supplies_stock_reserved", "Units promised to deliveries", POSITION)
        self.expired = m.gauge("firstline_supplies_stock_expired", "Expired units still on the shelf", POSITION)
        self.threshold = m.gauge(
            "firstline_supplies_stock_threshold",
            "The line available stock is held against: the minimum, or what covers the resupply lead time",
            POSITION,
        )
        self.days_of_cover = m.gauge(
            "firstline_supplies_days_of_cover",
            "Days the available stock lasts at the recent daily consumption (absent when nothing is being issued)",
            POSITION,
        )
        self.lead_time = m.gauge("firstline_supplies_lead_time_days", "Days a resupply takes", POSITION)
        self.consumption = m.gauge(
            "firstline_supplies_daily_consumption", "Units issued per day, averaged over the recent window", POSITION
        )
        self.alert = m.gauge(
            "firstline_supplies_stock_alert",
            "1 for the position's current alert state (ok, low, out), 0 for the others",
            (*POSITION, "state"),
        )
        self.reservations = m.gauge(
            "firstline_supplies_reservations", "Reservations for deliveries by status", ("status",)
        )
        self.movements = m.counter(
            "firstline_supplies_movements_total", "Ledger movements recorded, by kind", ("kind",)
        )
        self.suggestions = m.gauge(
            "firstline_supplies_transfer_suggestions", "Suggested transfers between depots, by status", ("status",)
        )

    def schedule(self) -> None:
        self.runtime.every("metrics", self.refresh, interval_s=REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        await self.domain.refresh(self.compute)

    async def compute(self) -> dict[Family, Values]:
        positions = await self.service.positions()
        async with self.runtime.db.session() as session:
            depots = dict((await session.execute(select(Depot.depot_id, Depot.name))).all())
            reservations = (
                await session.execute(select(Reservation.status, func.count()).group_by(Reservation.status))
            ).all()
            movements = (await session.execute(select(Movement.kind, func.count()).group_by(Movement.kind))).all()
            suggestions = (
                await session.execute(
                    select(TransferSuggestion.status, func.count()).group_by(TransferSuggestion.status)
                )
            ).all()
        figures: dict[Family, dict] = {
            family: {}
            for family in (
                self.on_hand, self.available, self.reserved, self.expired, self.threshold,
                self.days_of_cover, self.lead_time, self.consumption, self.alert,
            )
        }  # fmt: skip
        for p in positions:
            key = (p.depot_id, depots.get(p.depot_id, p.depot_id), p.item.item_id, p.item.name, p.item.category)
            level, status = p.level, p.status
            figures[self.on_hand][key] = level.on_hand
            figures[self.available][key] = level.available
            figures[self.reserved][key] = level.reserved
            figures[self.expired][key] = p.expired
            figures[self.lead_time][key] = level.lead_time_days
            figures[self.consumption][key] = level.daily_consumption
            if level.minimum is not None or level.daily_consumption > 0:
                figures[self.threshold][key] = status.threshold
            if level.days_of_cover is not None:
                figures[self.days_of_cover][key] = level.days_of_cover
            for state in STATES:
                figures[self.alert][(*key, state)] = 1.0 if status.state == state else 0.0
        figures[self.reservations] = {
            **{(s,): 0 for s in ("held", "rejected", "released", "issued")},
            **{(status,): count for status, count in reservations},
        }
        figures[self.movements] = {(kind,): count for kind, count in movements}
        figures[self.suggestions] = {
            **{(s,): 0 for s in ("open", "done")},
            **{(status,): count for status, count in suggestions},
        }
        return figures
