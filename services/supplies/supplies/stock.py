"""What every supplies use case stands on: the service's context, the locks, the batches, the
ledger line and the alert each change of state causes.

Everything that changes an item's stock at a depot first locks that item's balance row (in a
fixed order, so two transactions never wait on each other in a circle), then reads what is
there and decides. That is what keeps concurrent issues and reservations from overselling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, func, or_, select, tuple_

from common.clock import local_date
from common.errors import Conflict, Invalid, NotFound
from common.events.supplies import StockLow, StockOut, StockRestored
from common.outbox import UnitOfWork
from common.runtime import Runtime
from supplies import domain
from supplies.models import Depot, Item, Movement, StockBalance, StockBatch
from supplies.settings import SuppliesSettings

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


class Stock:
    """The shared inside of the supplies use cases (catalog, moves, reservations, alerts, reading)."""

    def __init__(self, runtime: Runtime, settings: SuppliesSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz

    @property
    def clock(self):
        return self.runtime.clock

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

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
                Position(
                    item,
                    balance.depot_id,
                    balance,
                    level,
                    domain.assess(level),
                    round(balance.on_hand - usable.get(key, 0.0), 6),
                )
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
        await uow.lock_for_write()
        if create:
            now = self.clock.now()
            for item_id, depot_id in keys:
                await uow.session.execute(
                    uow.insert(StockBalance)
                    .values(
                        item_id=item_id, depot_id=depot_id, on_hand=0.0, reserved=0.0, alert_state="ok", updated_at=now
                    )
                    .on_conflict_do_nothing(index_elements=["item_id", "depot_id"])
                )
        query = uow.for_update(
            select(StockBalance)
            .where(tuple_(StockBalance.item_id, StockBalance.depot_id).in_(keys))
            .order_by(StockBalance.item_id, StockBalance.depot_id)
            .execution_options(populate_existing=True)
        )
        rows = (await uow.session.execute(query)).scalars().all()
        return {(b.item_id, b.depot_id): b for b in rows}

    async def _lock_items(self, uow: UnitOfWork, item_ids: list[str]) -> dict[Key, StockBalance]:
        """Lock every depot's balance of these items (a reservation may take from any)."""
        if not item_ids:
            return {}
        await uow.lock_for_write()
        query = uow.for_update(
            select(StockBalance)
            .where(StockBalance.item_id.in_(item_ids))
            .order_by(StockBalance.item_id, StockBalance.depot_id)
            .execution_options(populate_existing=True)
        )
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
            select(StockBatch).where(
                StockBatch.item_id == item_id, StockBatch.depot_id == depot_id, StockBatch.batch == code
            )
        )
        if row is not None:
            if row.expires_on != expires_on:
                raise Invalid(
                    f"batch {code!r} of {item_id} at {depot_id} expires on {row.expires_on or 'no date'}, not {expires_on or 'no date'}"
                )
            return row
        row = StockBatch(
            item_id=item_id,
            depot_id=depot_id,
            batch=code,
            expires_on=expires_on,
            source=source,
            quantity=0.0,
            received_at=self.clock.now(),
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

    async def _usable(
        self, session, keys: list[Key] | None, *, item_id: str | None = None, depot_id: str | None = None
    ) -> dict[Key, float]:
        query = (
            select(StockBatch.item_id, StockBatch.depot_id, func.sum(StockBatch.quantity))
            .where(or_(StockBatch.expires_on.is_(None), StockBatch.expires_on >= self.today()))
            .group_by(StockBatch.item_id, StockBatch.depot_id)
        )
        query = _scoped(query, StockBatch, keys, item_id, depot_id)
        return {(i, d): float(q or 0.0) for i, d, q in await session.execute(query)}

    async def _issued(
        self, session, keys: list[Key] | None, *, item_id: str | None = None, depot_id: str | None = None
    ) -> dict[Key, float]:
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
