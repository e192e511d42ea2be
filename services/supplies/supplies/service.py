"""Supplies use cases: load, decide (domain), append to the ledger, update its projections
and stage events, in one transaction.

Routes (api.py), consumers (handlers.py) and periodic jobs (jobs.py) all call these.
Everything that changes an item's stock at a depot first locks that item's balance row
(SELECT ... FOR UPDATE on PostgreSQL, in a fixed order so two transactions never wait on
each other in a circle; SQLite has one writer at a time), then reads what is there and
decides. That is what keeps concurrent issues and reservations from overselling.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from common.clock import local_date
from common.errors import Conflict, Invalid, NotFound
from common.events.supplies import (
    ReservationLine,
    ReservationRejected,
    ReservationReleased,
    Shortage,
    StockExpiring,
    StockLow,
    StockOut,
    StockReserved,
    StockRestored,
    TransferSuggested,
)
from common.outbox import UnitOfWork
from common.runtime import Runtime
from supplies import domain
from supplies.models import Depot, Item, Movement, Reservation, StockBalance, StockBatch, TransferSuggestion
from supplies.settings import SuppliesSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[str, str]  # (item_id, depot_id)
UNBATCHED = "UNBATCHED"


@dataclass(frozen=True)
class Position:
    """One item at one depot, as read for an answer or a decision."""

    item: Item
    depot_id: str
    balance: StockBalance
    level: domain.Level
    status: domain.Status
    expired: float


class SuppliesService:
    def __init__(self, runtime: Runtime, settings: SuppliesSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz

    @property
    def clock(self):
        return self.runtime.clock

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    def _insert(self):
        return pg_insert if self.runtime.db.is_postgres else sqlite_insert

    async def _within(self, uow: UnitOfWork | None, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run `work` in the caller's unit of work (a consumer's), or in a new one."""
        async with self.runtime.work(uow) as w:
            return await work(w)

    # -- catalog and places -------------------------------------------------------------

    async def create_item(
        self,
        by: str,
        *,
        sku: str,
        name: str,
        unit: str,
        category: str,
        tracks_expiry: bool = False,
        threshold: float | None = None,
        lead_time_days: float | None = None,
        item_id: str | None = None,
    ) -> Item:
        sku = domain.check_sku(sku)
        domain.check_choice(category, domain.CATEGORIES, "category")
        if threshold is not None and threshold < 0:
            raise Invalid(f"threshold {threshold:g} is negative: it is the minimum to keep on hand")
        if lead_time_days is not None and lead_time_days < 0:
            raise Invalid(f"lead_time_days {lead_time_days:g} is negative")
        if not name.strip() or not unit.strip():
            raise Invalid("an item needs a name and a unit (e.g. box, bottle, kit)")
        async with self.uow() as uow:
            existing = await uow.session.scalar(select(Item).where(Item.sku == sku))
            if existing is not None:
                raise Conflict(f"sku {sku} is already item {existing.item_id}", item_id=existing.item_id)
            item_id = item_id or f"I-{uuid.uuid4().hex[:12]}"
            if await uow.session.get(Item, item_id):
                raise Conflict(f"item {item_id!r} exists", item_id=item_id)
            item = Item(
                item_id=item_id,
                sku=sku,
                name=name.strip(),
                unit=unit.strip(),
                category=category,
                tracks_expiry=tracks_expiry,
                threshold=threshold,
                lead_time_days=lead_time_days,
                created_by=by,
                created_at=self.clock.now(),
            )
            uow.session.add(item)
            await _commit_unique(uow, f"sku {sku} or item {item_id} already exists")
            return item

    async def create_depot(
        self,
        by: str,
        *,
        name: str,
        lat: float,
        lon: float,
        kind: str = "building_point",
        building_id: str | None = None,
        depot_id: str | None = None,
    ) -> Depot:
        domain.check_choice(kind, domain.DEPOT_KINDS, "depot kind")
        domain.check_coordinates(lat, lon)
        if not name.strip():
            raise Invalid("a depot needs a name")
        async with self.uow() as uow:
            existing = await uow.session.scalar(select(Depot).where(Depot.name == name.strip()))
            if existing is not None:
                raise Conflict(f"depot {name!r} is already {existing.depot_id}", depot_id=existing.depot_id)
            depot_id = depot_id or f"D-{uuid.uuid4().hex[:12]}"
            if await uow.session.get(Depot, depot_id):
                raise Conflict(f"depot {depot_id!r} exists", depot_id=depot_id)
            depot = Depot(
                depot_id=depot_id,
                name=name.strip(),
                kind=kind,
                lat=lat,
                lon=lon,
                building_id=building_id,
                created_by=by,
                created_at=self.clock.now(),
            )
            uow.session.add(depot)
            await _commit_unique(uow, f"depot {name!r} or {depot_id} already exists")
            return depot

    async def items(self) -> list[Item]:
        async with self.runtime.db.session() as session:
            return list((await session.execute(select(Item).order_by(Item.category, Item.sku))).scalars())

    async def depots(self) -> list[Depot]:
        async with self.runtime.db.session() as session:
            return list((await session.execute(select(Depot).order_by(Depot.name))).scalars())

    async def set_policy(
        self, item_id: str, depot_id: str, minimum: float | None, lead_time_days: float | None
    ) -> Position:
        """A depot's own minimum and lead time for an item; re-assessed at once."""
        if minimum is not None and minimum < 0:
            raise Invalid(f"minimum {minimum:g} is negative")
        if lead_time_days is not None and lead_time_days < 0:
            raise Invalid(f"lead_time_days {lead_time_days:g} is negative")
        async with self.uow() as uow:
            await self._known(uow, item_id, depot_id)
            balances = await self._lock(uow, [(item_id, depot_id)], create=True)
            balance = balances[(item_id, depot_id)]
            balance.minimum = minimum
            balance.lead_time_days = lead_time_days
            balance.updated_at = self.clock.now()
            await self._announce(uow, [(item_id, depot_id)])
            await uow.commit()
        return (await self.positions(item_id=item_id, depot_id=depot_id))[0]

    # -- the ledger -----------------------------------------------------------------------

    async def receive(
        self,
        by: str,
        *,
        depot_id: str,
        item_id: str,
        quantity: float,
        batch: str | None = None,
        expires_on: date | None = None,
        source: str | None = None,
        note: str | None = None,
    ) -> Movement:
        quantity = domain.check_quantity(quantity)
        if source is not None:
            domain.check_choice(source, domain.SOURCES, "source")
        async with self.uow() as uow:
            item, _ = await self._known(uow, item_id, depot_id)
            domain.check_receipt(expires_on, item.tracks_expiry, self.today(), item.sku)
            await self._lock(uow, [(item_id, depot_id)], create=True)
            code = (batch or "").strip() or (f"EXP-{expires_on.isoformat()}" if expires_on else UNBATCHED)
            row = await self._batch(uow, item_id, depot_id, code, expires_on, source)
            movement = await self._move(uow, "receipt", row, quantity, by, source=source, reason=note)
            await self._announce(uow, [(item_id, depot_id)])
            await uow.commit()
            return movement

    async def issue(
        self,
        by: str,
        *,
        depot_id: str,
        item_id: str,
        quantity: float,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> list[Movement]:
        """Issue to people: first expiring batch first; never expired stock, never what is
        reserved for deliveries, never more than is there."""
        quantity = domain.check_quantity(quantity)
        async with self.uow() as uow:
            item, _ = await self._known(uow, item_id, depot_id)
            balances = await self._lock(uow, [(item_id, depot_id)])
            balance = balances.get((item_id, depot_id))
            batches = await self._batches(uow, item_id, depot_id)
            usable = domain.usable(batches, self.today())
            reserved = balance.reserved if balance else 0.0
            available = max(round(usable - reserved, 6), 0.0)
            if quantity > available + domain.EPSILON:
                raise Conflict(
                    f"cannot issue {quantity:g} {item.unit} of {item.sku} at {depot_id}: only {available:g} available "
                    f"({balance.on_hand if balance else 0:g} on hand, {usable:g} unexpired, {reserved:g} reserved for deliveries)",
                    available=available,
                )
            picks = domain.pick_batches(batches, quantity, self.today())
            movements = [
                await self._move(uow, "issue", await uow.session.get(StockBatch, b.batch_id), -q, by, reason=reason, request_id=request_id)
                for b, q in picks
            ]
            await self._announce(uow, [(item_id, depot_id)])
            await uow.commit()
            return movements

    async def transfer(
        self,
        by: str,
        *,
        item_id: str,
        from_depot_id: str,
        to_depot_id: str,
        quantity: float,
        suggestion_id: int | None = None,
    ) -> str:
        """Move stock between depots, batch by batch (first expiring first), in one step."""
        quantity = domain.check_quantity(quantity)
        if from_depot_id == to_depot_id:
            raise Invalid(f"a transfer goes to another depot: from and to are both {from_depot_id}")
        async with self.uow() as uow:
            item, _ = await self._known(uow, item_id, from_depot_id)
            await self._known(uow, item_id, to_depot_id)
            keys = [(item_id, from_depot_id), (item_id, to_depot_id)]
            balances = await self._lock(uow, keys, create=True)
            source = balances[(item_id, from_depot_id)]
            batches = await self._batches(uow, item_id, from_depot_id)
            usable = domain.usable(batches, self.today())
            available = max(round(usable - source.reserved, 6), 0.0)
            if quantity > available + domain.EPSILON:
                raise Conflict(
                    f"cannot transfer {quantity:g} {item.unit} of {item.sku} from {from_depot_id}: only {available:g} "
                    f"available ({usable:g} unexpired, {source.reserved:g} reserved)",
                    available=available,
                )
            transfer_id = f"T-{uuid.uuid4().hex[:12]}"
            reason = f"transfer {from_depot_id} -> {to_depot_id}"
            for picked, q in domain.pick_batches(batches, quantity, self.today(), what="transfer"):
                out_batch = await uow.session.get(StockBatch, picked.batch_id)
                in_batch = await self._batch(uow, item_id, to_depot_id, out_batch.batch, out_batch.expires_on, out_batch.source)
                await self._move(uow, "transfer_out", out_batch, -q, by, reason=reason, transfer_id=transfer_id)
                await self._move(uow, "transfer_in", in_batch, q, by, reason=reason, transfer_id=transfer_id)
            if suggestion_id is not None:
                await uow.session.execute(
                    update(TransferSuggestion)
                    .where(TransferSuggestion.suggestion_id == suggestion_id, TransferSuggestion.status == "open")
                    .values(status="done", transfer_id=transfer_id)
                )
            await self._announce(uow, keys)
            await uow.commit()
            return transfer_id

    async def adjust(
        self,
        by: str,
        *,
        depot_id: str,
        item_id: str,
        quantity: float,
        reason: str,
        batch: str | None = None,
        note: str | None = None,
    ) -> list[Movement]:
        """Correct the ledger: loss, damage, expiry write-off (negative) or a stock count
        (either sign). Expired stock can be written off; it can never be issued."""
        delta = domain.check_delta(quantity)
        domain.check_choice(reason, domain.ADJUSTMENT_REASONS, "adjustment reason")
        if delta > 0 and reason != "count_correction":
            raise Invalid(f"a {reason} removes stock: give a negative quantity (a count correction may add)")
        async with self.uow() as uow:
            item, _ = await self._known(uow, item_id, depot_id)
            await self._lock(uow, [(item_id, depot_id)], create=True)
            text = reason + (f": {note}" if note else "")
            batches = await self._batches(uow, item_id, depot_id)
            if batch is not None:
                named = [b for b in batches if b.batch == batch]
                if not named and delta < 0:
                    raise NotFound(f"no batch {batch!r} of {item.sku} at {depot_id}")
                batches = named
            if delta > 0:
                if batches:
                    target = await uow.session.get(StockBatch, domain.fefo_order(batches)[-1].batch_id)
                elif item.tracks_expiry:
                    raise Invalid(f"{item.sku} tracks expiry: receive new stock with its batch and expiry instead")
                else:
                    target = await self._batch(uow, item_id, depot_id, batch or UNBATCHED, None, None)
                movements = [await self._move(uow, "adjustment", target, delta, by, reason=text)]
            else:
                picks = domain.pick_batches(batches, -delta, self.today(), include_expired=True, what="write off")
                movements = [
                    await self._move(uow, "adjustment", await uow.session.get(StockBatch, b.batch_id), -q, by, reason=text)
                    for b, q in picks
                ]
            await self._announce(uow, [(item_id, depot_id)])
            await uow.commit()
            return movements

    # -- reservations for deliveries ------------------------------------------------------

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

        async def work(uow: UnitOfWork) -> Reservation:
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
                available.setdefault(item_id, {})[depot] = max(round(usable.get((item_id, depot), 0.0) - balance.reserved, 6), 0.0)
            plan = domain.plan_reservation(wanted.items(), available, depot_id)
            now = self.clock.now()
            if not plan.accepted:
                shortages = [
                    {"item_id": s.item_id, "requested": s.requested, "available": s.available, **({} if s.item_id in known else {"reason": "unknown item"})}
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
                lines=[{"item_id": a.item_id, "depot_id": a.depot_id, "quantity": a.quantity} for a in plan.allocations],
                shortages=[],
                created_by=by,
                created_at=now,
            )
            uow.session.add(reservation)
            uow.emit(StockReserved(request_id=request_id, lines=[ReservationLine(**line) for line in reservation.lines]))
            await self._announce(uow, sorted({(a.item_id, a.depot_id) for a in plan.allocations}))
            return reservation

        return await self._within(uow, work)

    async def release(self, request_id: str, reason: str, *, uow: UnitOfWork | None = None) -> Reservation | None:
        """Give reserved stock back (a cancelled request). None when nothing was held."""

        async def work(uow: UnitOfWork) -> Reservation | None:
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

        return await self._within(uow, work)

    async def fulfil(self, request_id: str, by: str, *, uow: UnitOfWork | None = None) -> Reservation | None:
        """A delivered request: its reservation becomes issues in the ledger."""

        async def work(uow: UnitOfWork) -> Reservation | None:
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

        return await self._within(uow, work)

    async def reservation(self, request_id: str) -> Reservation:
        async with self.runtime.db.session() as session:
            reservation = await session.get(Reservation, request_id)
        if reservation is None:
            raise NotFound(f"no reservation for request {request_id!r}")
        return reservation

    async def _held(self, uow: UnitOfWork, request_id: str) -> Reservation | None:
        await self._write_lock(uow)
        query = select(Reservation).where(Reservation.request_id == request_id, Reservation.status == "held")
        if self.runtime.db.is_postgres:
            query = query.with_for_update()  # a cancel and a fulfilment racing: one of them acts
        return await uow.session.scalar(query.execution_options(populate_existing=True))

    # -- reading stock ----------------------------------------------------------------------

    async def positions(
        self, *, item_id: str | None = None, depot_id: str | None = None, keys: list[Key] | None = None, session=None
    ) -> list[Position]:
        """Every item at every depot it is kept at, assessed now."""
        if session is None:
            async with self.runtime.db.session() as own:
                return await self.positions(item_id=item_id, depot_id=depot_id, keys=keys, session=own)
        query = select(StockBalance, Item).join(Item, Item.item_id == StockBalance.item_id)
        if item_id:
            query = query.where(StockBalance.item_id == item_id)
        if depot_id:
            query = query.where(StockBalance.depot_id == depot_id)
        if keys is not None:
            if not keys:
                return []
            query = query.where(tuple_(StockBalance.item_id, StockBalance.depot_id).in_(keys))
        rows = (await session.execute(query.order_by(StockBalance.depot_id, Item.sku))).all()
        if not rows:
            return []
        wanted = keys if keys is not None else None
        usable = await self._usable(session, wanted, item_id=item_id, depot_id=depot_id)
        issued = await self._issued(session, wanted, item_id=item_id, depot_id=depot_id)
        out = []
        for balance, item in rows:
            key = (balance.item_id, balance.depot_id)
            level = self._level(item, balance, usable.get(key, 0.0), issued.get(key, 0.0))
            out.append(
                Position(item, balance.depot_id, balance, level, domain.assess(level), round(balance.on_hand - usable.get(key, 0.0), 6))
            )
        return out

    def _level(self, item: Item, balance: StockBalance, usable: float, issued: float) -> domain.Level:
        minimum = balance.minimum if balance.minimum is not None else item.threshold
        lead = balance.lead_time_days if balance.lead_time_days is not None else item.lead_time_days
        return domain.Level(
            on_hand=round(balance.on_hand, 6),
            usable=round(usable, 6),
            reserved=round(balance.reserved, 6),
            minimum=minimum,
            daily_consumption=domain.daily_consumption(issued, self.settings.consumption_window_days),
            lead_time_days=self.settings.default_lead_time_days if lead is None else lead,
        )

    async def alerts(self, depot_id: str | None = None) -> list[Position]:
        """What is below its line, most urgent first: the dashboard's red cells."""
        below = [p for p in await self.positions(depot_id=depot_id) if p.status.state != "ok"]
        return sorted(below, key=lambda p: (domain.urgency(p.status), p.item.sku, p.depot_id))

    async def batches(self, item_id: str | None = None, depot_id: str | None = None) -> list[StockBatch]:
        query = select(StockBatch).where(StockBatch.quantity > domain.EPSILON)
        if item_id:
            query = query.where(StockBatch.item_id == item_id)
        if depot_id:
            query = query.where(StockBatch.depot_id == depot_id)
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).scalars().all()
        return sorted(rows, key=lambda b: (b.item_id, b.depot_id, b.expires_on is None, b.expires_on or date.max, b.batch_id))

    async def ledger(
        self, *, item_id: str | None = None, depot_id: str | None = None, request_id: str | None = None, limit: int = 200
    ) -> list[Movement]:
        query = select(Movement).order_by(Movement.movement_id.desc()).limit(limit)
        if item_id:
            query = query.where(Movement.item_id == item_id)
        if depot_id:
            query = query.where(Movement.depot_id == depot_id)
        if request_id:
            query = query.where(Movement.request_id == request_id)
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars())

    async def audit(self) -> dict:
        """Recompute on-hand from the ledger and compare it with the projections."""
        async with self.runtime.db.session() as session:
            sums = dict(
                ((i, d), float(q))
                for i, d, q in await session.execute(
                    select(Movement.item_id, Movement.depot_id, func.sum(Movement.quantity)).group_by(
                        Movement.item_id, Movement.depot_id
                    )
                )
            )
            batch_sums = dict(
                (b, float(q))
                for b, q in await session.execute(select(Movement.batch_id, func.sum(Movement.quantity)).group_by(Movement.batch_id))
            )
            balances = (await session.execute(select(StockBalance))).scalars().all()
            batches = (await session.execute(select(StockBatch))).scalars().all()
            movements = await session.scalar(select(func.count()).select_from(Movement))
        differences = [
            {"item_id": b.item_id, "depot_id": b.depot_id, "on_hand": b.on_hand, "ledger": round(sums.get((b.item_id, b.depot_id), 0.0), 6)}
            for b in balances
            if abs(b.on_hand - sums.get((b.item_id, b.depot_id), 0.0)) > 1e-6 or b.on_hand < -domain.EPSILON
        ]
        differences += [
            {"batch_id": b.batch_id, "item_id": b.item_id, "depot_id": b.depot_id, "quantity": b.quantity, "ledger": round(batch_sums.get(b.batch_id, 0.0), 6)}
            for b in batches
            if abs(b.quantity - batch_sums.get(b.batch_id, 0.0)) > 1e-6 or b.quantity < -domain.EPSILON
        ]
        return {"balances": len(balances), "batches": len(batches), "movements": movements, "consistent": not differences, "differences": differences}

    # -- jobs -------------------------------------------------------------------------------

    async def reassess_all(self) -> int:
        """Announce crossings that time alone causes (stock expiring, consumption moving out
        of the window). Only positions whose state changed are locked and announced."""
        changed = [(p.item.item_id, p.depot_id) for p in await self.positions() if p.status.state != p.balance.alert_state]
        announced = 0
        for key in changed:
            async with self.uow() as uow:
                await self._lock(uow, [key])
                announced += await self._announce(uow, [key])
                await uow.commit()
        return announced

    async def warn_expiring(self) -> int:
        """`StockExpiring` once per batch, `expiry_warning_days` before it expires."""
        today, now = self.today(), self.clock.now()
        horizon = today + timedelta(days=self.settings.expiry_warning_days)
        async with self.uow() as uow:
            due = (
                await uow.session.execute(
                    select(StockBatch).where(
                        StockBatch.expiry_warned_at.is_(None),
                        StockBatch.quantity > domain.EPSILON,
                        StockBatch.expires_on.is_not(None),
                        StockBatch.expires_on >= today,
                        StockBatch.expires_on <= horizon,
                    )
                )
            ).scalars().all()
            warned = 0
            for batch in due:
                claimed = await uow.session.execute(
                    update(StockBatch)
                    .where(StockBatch.batch_id == batch.batch_id, StockBatch.expiry_warned_at.is_(None))
                    .values(expiry_warned_at=now)
                )
                if claimed.rowcount:  # another replica did not get there first
                    uow.emit(
                        StockExpiring(
                            item_id=batch.item_id,
                            depot_id=batch.depot_id,
                            batch=batch.batch,
                            expires_on=batch.expires_on,
                            quantity=batch.quantity,
                        )
                    )
                    warned += 1
            await uow.commit()
        return warned

    async def expiring(self, days: int | None = None) -> list[StockBatch]:
        today = self.today()
        horizon = today + timedelta(days=self.settings.expiry_warning_days if days is None else days)
        async with self.runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(StockBatch)
                    .where(StockBatch.quantity > domain.EPSILON, StockBatch.expires_on.is_not(None), StockBatch.expires_on <= horizon)
                    .order_by(StockBatch.expires_on, StockBatch.batch_id)
                )
            ).scalars().all()
        return list(rows)

    async def suggest_transfers(self) -> list[TransferSuggestion]:
        """Propose moves from depots with surplus days of cover to depots short of them, as
        few as possible, and emit `TransferSuggested` for each new one (once a day)."""
        positions = await self.positions()
        by_item: dict[str, list[Position]] = {}
        for p in positions:
            by_item.setdefault(p.item.item_id, []).append(p)
        today, now = self.today(), self.clock.now()
        created: list[TransferSuggestion] = []
        async with self.uow() as uow:
            insert = self._insert()
            for item_id, item_positions in sorted(by_item.items()):
                covers = [
                    domain.DepotCover(p.depot_id, p.level.available, p.level.daily_consumption, p.level.minimum, p.level.lead_time_days)
                    for p in item_positions
                ]
                by_depot = {p.depot_id: p for p in item_positions}
                moves = domain.suggest_transfers(
                    covers,
                    surplus_factor=self.settings.surplus_cover_factor,
                    target_factor=self.settings.target_cover_factor,
                    min_quantity=self.settings.min_transfer_quantity,
                )
                for move in moves:
                    giver, taker = by_depot[move.from_depot_id].level, by_depot[move.to_depot_id].level
                    reason = (
                        f"{move.to_depot_id} has {_cover(taker)} (lead time {taker.lead_time_days:g} d, minimum "
                        f"{taker.minimum or 0:g}); {move.from_depot_id} has {_cover(giver)}"
                    )
                    result = await uow.session.execute(
                        insert(TransferSuggestion)
                        .values(
                            item_id=item_id,
                            from_depot_id=move.from_depot_id,
                            to_depot_id=move.to_depot_id,
                            quantity=move.quantity,
                            day=today,
                            reason=reason,
                            status="open",
                            created_at=now,
                        )
                        .on_conflict_do_nothing(index_elements=["item_id", "from_depot_id", "to_depot_id", "day"])
                        .returning(TransferSuggestion.suggestion_id)
                    )
                    suggestion_id = result.scalar()
                    if suggestion_id is None:
                        continue  # already proposed today
                    uow.emit(
                        TransferSuggested(
                            item_id=item_id,
                            from_depot_id=move.from_depot_id,
                            to_depot_id=move.to_depot_id,
                            quantity=move.quantity,
                            reason=reason,
                        )
                    )
                    created.append(await uow.session.get(TransferSuggestion, suggestion_id))
            await uow.commit()
        return created

    async def suggestions(self, status: str | None = "open") -> list[TransferSuggestion]:
        query = select(TransferSuggestion).order_by(TransferSuggestion.suggestion_id.desc())
        if status:
            query = query.where(TransferSuggestion.status == status)
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars())

    # -- the inside of a transaction --------------------------------------------------------

    async def _known(self, uow: UnitOfWork, item_id: str, depot_id: str) -> tuple[Item, Depot]:
        item = await uow.session.get(Item, item_id)
        depot = await uow.session.get(Depot, depot_id)
        if item is None and depot is None:
            raise NotFound(f"no item {item_id!r} and no depot {depot_id!r}")
        if item is None:
            raise NotFound(f"no item {item_id!r}: add it with POST /items first")
        if depot is None:
            raise NotFound(f"no depot {depot_id!r}: add it with POST /depots first")
        return item, depot

    async def _lock(self, uow: UnitOfWork, keys: list[Key], *, create: bool = False) -> dict[Key, StockBalance]:
        """Lock the balance rows of these keys, in key order; `create` makes missing ones."""
        keys = sorted(set(keys))
        await self._write_lock(uow)
        if create:
            now = self.clock.now()
            insert = self._insert()
            for item_id, depot_id in keys:
                await uow.session.execute(
                    insert(StockBalance)
                    .values(item_id=item_id, depot_id=depot_id, on_hand=0.0, reserved=0.0, alert_state="ok", updated_at=now)
                    .on_conflict_do_nothing(index_elements=["item_id", "depot_id"])
                )
        query = (
            select(StockBalance)
            .where(tuple_(StockBalance.item_id, StockBalance.depot_id).in_(keys))
            .order_by(StockBalance.item_id, StockBalance.depot_id)
            .execution_options(populate_existing=True)
        )
        if self.runtime.db.is_postgres:
            query = query.with_for_update()
        rows = (await uow.session.execute(query)).scalars().all()
        return {(b.item_id, b.depot_id): b for b in rows}

    async def _write_lock(self, uow: UnitOfWork) -> None:
        """SQLite has no row locks: take its single write lock before reading what we decide on."""
        if self.runtime.db.is_sqlite:
            await uow.session.execute(update(StockBalance).where(StockBalance.item_id == "").values(reserved=0))

    async def _lock_items(self, uow: UnitOfWork, item_ids: list[str]) -> dict[Key, StockBalance]:
        """Lock every depot's balance of these items (a reservation may take from any)."""
        if not item_ids:
            return {}
        query = (
            select(StockBalance)
            .where(StockBalance.item_id.in_(item_ids))
            .order_by(StockBalance.item_id, StockBalance.depot_id)
            .execution_options(populate_existing=True)
        )
        await self._write_lock(uow)
        if self.runtime.db.is_postgres:
            query = query.with_for_update()
        rows = (await uow.session.execute(query)).scalars().all()
        return {(b.item_id, b.depot_id): b for b in rows}

    async def _batches(self, uow: UnitOfWork, item_id: str, depot_id: str) -> list[domain.BatchStock]:
        rows = await uow.session.execute(
            select(StockBatch.batch_id, StockBatch.batch, StockBatch.expires_on, StockBatch.quantity).where(
                StockBatch.item_id == item_id, StockBatch.depot_id == depot_id, StockBatch.quantity > domain.EPSILON
            )
        )
        return [domain.BatchStock(r.batch_id, r.batch, r.expires_on, r.quantity) for r in rows]

    async def _batch(
        self, uow: UnitOfWork, item_id: str, depot_id: str, code: str, expires_on: date | None, source: str | None
    ) -> StockBatch:
        row = await uow.session.scalar(
            select(StockBatch).where(StockBatch.item_id == item_id, StockBatch.depot_id == depot_id, StockBatch.batch == code)
        )
        if row is not None:
            if row.expires_on != expires_on:
                raise Invalid(
                    f"batch {code!r} of {item_id} at {depot_id} expires on {row.expires_on or 'no date'}, not {expires_on or 'no date'}"
                )
            return row
        row = StockBatch(
            item_id=item_id, depot_id=depot_id, batch=code, expires_on=expires_on, source=source, quantity=0.0, received_at=self.clock.now()
        )
        uow.session.add(row)
        await uow.session.flush()
        return row

    async def _move(
        self,
        uow: UnitOfWork,
        kind: str,
        batch: StockBatch,
        quantity: float,
        by: str,
        *,
        source: str | None = None,
        reason: str | None = None,
        request_id: str | None = None,
        transfer_id: str | None = None,
    ) -> Movement:
        """Append one ledger line and apply it to its projections (locked by the caller)."""
        balance = await uow.session.get(StockBalance, (batch.item_id, batch.depot_id))
        batch.quantity = round(batch.quantity + quantity, 6)
        balance.on_hand = round(balance.on_hand + quantity, 6)
        if batch.quantity < -domain.EPSILON or balance.on_hand < -domain.EPSILON:
            # The rules above forbid it; this is the last guard of the ledger.
            raise Conflict(f"{batch.item_id} at {batch.depot_id} (batch {batch.batch}) would go below zero")
        now = self.clock.now()
        balance.updated_at = now
        movement = Movement(
            kind=kind,
            item_id=batch.item_id,
            depot_id=batch.depot_id,
            batch_id=batch.batch_id,
            quantity=round(quantity, 6),
            source=source,
            reason=reason[:200] if reason else None,
            request_id=request_id,
            transfer_id=transfer_id,
            by=by,
            at=now,
        )
        uow.session.add(movement)
        return movement

    async def _announce(self, uow: UnitOfWork, keys: list[Key]) -> int:
        """Assess these (locked) positions and emit the alert each change of state causes:
        once per crossing. Returns how many alerts were emitted."""
        await uow.session.flush()
        now = self.clock.now()
        emitted = 0
        for position in await self.positions(keys=sorted(set(keys)), session=uow.session):
            balance = position.balance  # the locked row, from the session's identity map
            alert = domain.alert_for(balance.alert_state, position.status)  # type: ignore[arg-type]
            if alert is None:
                continue
            uow.emit(_alert_event(alert, position))
            balance.alert_state, balance.alert_changed_at = position.status.state, now
            emitted += 1
        return emitted

    async def _usable(self, session, keys: list[Key] | None, *, item_id: str | None = None, depot_id: str | None = None) -> dict[Key, float]:
        query = (
            select(StockBatch.item_id, StockBatch.depot_id, func.sum(StockBatch.quantity))
            .where(or_(StockBatch.expires_on.is_(None), StockBatch.expires_on >= self.today()))
            .group_by(StockBatch.item_id, StockBatch.depot_id)
        )
        query = _scoped(query, StockBatch, keys, item_id, depot_id)
        return {(i, d): float(q or 0.0) for i, d, q in await session.execute(query)}

    async def _issued(self, session, keys: list[Key] | None, *, item_id: str | None = None, depot_id: str | None = None) -> dict[Key, float]:
        since = self.clock.now() - timedelta(days=self.settings.consumption_window_days)
        query = (
            select(Movement.item_id, Movement.depot_id, -func.sum(Movement.quantity))
            .where(and_(Movement.kind == "issue", Movement.at >= since))
            .group_by(Movement.item_id, Movement.depot_id)
        )
        query = _scoped(query, Movement, keys, item_id, depot_id)
        return {(i, d): float(q or 0.0) for i, d, q in await session.execute(query)}


def _scoped(query, model, keys: list[Key] | None, item_id: str | None, depot_id: str | None):
    if keys is not None:
        query = query.where(tuple_(model.item_id, model.depot_id).in_(keys))
    if item_id:
        query = query.where(model.item_id == item_id)
    if depot_id:
        query = query.where(model.depot_id == depot_id)
    return query


def _cover(level: domain.Level) -> str:
    cover = level.days_of_cover
    return f"{level.available:g} available" + (f", {cover:g} days of cover" if cover is not None else ", no recent use")


def _alert_event(alert: str, position: Position):
    item, level, status = position.item, position.level, position.status
    common = {"item_id": item.item_id, "depot_id": position.depot_id}
    if alert == "out":
        return StockOut(**common, sku=item.sku, item_name=item.name, on_hand=level.on_hand, reserved=level.reserved)
    if alert == "low":
        return StockLow(
            **common,
            on_hand=level.on_hand,
            threshold=status.threshold,
            days_of_cover=level.days_of_cover,
            reason=status.reason,
            lead_time_days=level.lead_time_days,
            sku=item.sku,
            item_name=item.name,
            available=level.available,
            reserved=level.reserved,
        )
    return StockRestored(**common, on_hand=level.on_hand, threshold=status.threshold, available=level.available)


async def _commit_unique(uow: UnitOfWork, message: str) -> None:
    try:
        await uow.commit()
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(message) from exc
