"""Reservations for deliveries: reserve every line or none, release, fulfil into issues."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select

from common.errors import NotFound
from common.events.supplies import ReservationLine, ReservationRejected, ReservationReleased, Shortage, StockReserved
from common.outbox import UnitOfWork
from supplies import domain
from supplies.models import Depot, Item, Reservation, StockBatch
from supplies.stock import Stock

log = logging.getLogger(__name__)


class Reservations(Stock):
    async def reserve(
        self,
        request_id: str,
        lines: Iterable[tuple[str, float]],
        by: str,
        *,
        depot_id: str | None = None,
        retry: bool = False,
        uow: UnitOfWork | None = None,
    ) -> Reservation:
        """Reserve every line or none: `StockReserved`, or `ReservationRejected` with the
        shortages. Asking again for the same request answers what was decided then, except
        that a retry (stock came back) plans a rejected reservation again."""
        lines = list(lines)

        def decided(existing: Reservation | None) -> bool:
            return existing is not None and not (retry and existing.status == "rejected")

        async with self.runtime.work(uow) as uow:
            existing = await uow.session.get(Reservation, request_id)
            if decided(existing):
                return existing
            wanted = domain.merge_lines(lines)
            known = set(
                (await uow.session.execute(select(Item.item_id).where(Item.item_id.in_(list(wanted))))).scalars()
            )
            if depot_id is not None and await uow.session.get(Depot, depot_id) is None:
                raise NotFound(f"no depot {depot_id!r}")
            balances = await self._lock_items(uow, sorted(known))
            # Asked twice at once: the second, once it holds the locks, sees the first's answer.
            existing = await uow.session.get(Reservation, request_id, populate_existing=True)
            if decided(existing):
                return existing
            if existing is not None:  # a rejected reservation, tried again: decide afresh
                await uow.session.delete(existing)
                await uow.session.flush()
            available: dict[str, dict[str, float]] = {}
            usable = await self._usable(uow.session, list(balances)) if balances else {}
            for (item_id, depot), balance in balances.items():
                available.setdefault(item_id, {})[depot] = max(
                    round(usable.get((item_id, depot), 0.0) - balance.reserved, 6), 0.0
                )
            plan = domain.plan_reservation(wanted.items(), available, depot_id)
            now = self.clock.now()
            if not plan.accepted:
                shortages = [
                    {
                        "item_id": s.item_id,
                        "requested": s.requested,
                        "available": s.available,
                        **({} if s.item_id in known else {"reason": "unknown item"}),
                    }
                    for s in plan.shortages
                ]
                reservation = Reservation(
                    request_id=request_id,
                    status="rejected",
                    lines=[{"item_id": i, "quantity": q} for i, q in wanted.items()],
                    shortages=shortages,
                    created_by=by,
                    created_at=now,
                    closed_at=now,
                )
                uow.session.add(reservation)
                uow.emit(
                    ReservationRejected(
                        request_id=request_id,
                        shortages=[Shortage(**s) for s in shortages],
                        lines=[ReservationLine(item_id=i, quantity=q) for i, q in wanted.items()],
                    )
                )
                return reservation
            for allocation in plan.allocations:
                balance = balances[(allocation.item_id, allocation.depot_id)]
                balance.reserved = round(balance.reserved + allocation.quantity, 6)
                balance.updated_at = now
            reservation = Reservation(
                request_id=request_id,
                status="held",
                lines=[
                    {"item_id": a.item_id, "depot_id": a.depot_id, "quantity": a.quantity} for a in plan.allocations
                ],
                shortages=[],
                created_by=by,
                created_at=now,
            )
            uow.session.add(reservation)
            uow.emit(
                StockReserved(request_id=request_id, lines=[ReservationLine(**line) for line in reservation.lines])
            )
            await self._announce(uow, sorted({(a.item_id, a.depot_id) for a in plan.allocations}))
            return reservation

    async def release(self, request_id: str, reason: str, *, uow: UnitOfWork | None = None) -> Reservation | None:
        """Give reserved stock back (a cancelled request). None when nothing was held."""
        async with self.runtime.work(uow) as uow:
            reservation = await self._held(uow, request_id)
            if reservation is None:
                return await uow.session.get(Reservation, request_id)
            keys = sorted({(line["item_id"], line["depot_id"]) for line in reservation.lines})
            balances = await self._lock(uow, keys)
            now = self.clock.now()
            for line in reservation.lines:
                balance = balances[(line["item_id"], line["depot_id"])]
                balance.reserved = max(round(balance.reserved - line["quantity"], 6), 0.0)
                balance.updated_at = now
            reservation.status, reservation.closed_at, reservation.close_reason = "released", now, reason[:200]
            uow.emit(ReservationReleased(request_id=request_id, reason=reason))
            await self._announce(uow, keys)
            return reservation

    async def fulfil(self, request_id: str, by: str, *, uow: UnitOfWork | None = None) -> Reservation | None:
        """A delivered request: its reservation becomes issues in the ledger."""
        async with self.runtime.work(uow) as uow:
            reservation = await self._held(uow, request_id)
            if reservation is None:
                return await uow.session.get(Reservation, request_id)
            keys = sorted({(line["item_id"], line["depot_id"]) for line in reservation.lines})
            balances = await self._lock(uow, keys)
            today, now = self.today(), self.clock.now()
            short: list[str] = []
            for line in reservation.lines:
                item_id, depot_id, quantity = line["item_id"], line["depot_id"], line["quantity"]
                balance = balances[(item_id, depot_id)]
                balance.reserved = max(round(balance.reserved - quantity, 6), 0.0)
                batches = await self._batches(uow, item_id, depot_id)
                # Stock written off or expired since it was reserved cannot be issued: issue what is left.
                take = min(quantity, domain.usable(batches, today))
                if take + domain.EPSILON < quantity:
                    short.append(f"{item_id}@{depot_id} short by {quantity - take:g}")
                if take > domain.EPSILON:
                    for b, q in domain.pick_batches(batches, take, today):
                        row = await uow.session.get(StockBatch, b.batch_id)
                        await self._move(uow, "issue", row, -q, by, reason="delivery", request_id=request_id)
            reservation.status, reservation.closed_at = "issued", now
            reservation.close_reason = "; ".join(short)[:200] or None
            if short:
                log.warning("request %s fulfilled short: %s", request_id, reservation.close_reason)
            await self._announce(uow, keys)
            return reservation

    async def _held(self, uow: UnitOfWork, request_id: str) -> Reservation | None:
        await uow.lock_for_write()
        # A cancel and a fulfilment racing: one of them acts.
        query = uow.for_update(
            select(Reservation).where(Reservation.request_id == request_id, Reservation.status == "held")
        )
        return await uow.session.scalar(query.execution_options(populate_existing=True))
