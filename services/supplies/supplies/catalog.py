"""The catalog and the places: items, depots and a depot's own policy for an item."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from common.errors import Conflict, Invalid
from common.outbox import UnitOfWork
from supplies import domain
from supplies.models import Depot, Item
from supplies.stock import Position, Stock


class Catalog(Stock):
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
        uow: UnitOfWork | None = None,
    ) -> Item:
        sku = domain.check_sku(sku)
        domain.check_choice(category, domain.CATEGORIES, "category")
        if threshold is not None and threshold < 0:
            raise Invalid(f"threshold {threshold:g} is negative: it is the minimum to keep on hand")
        if lead_time_days is not None and lead_time_days < 0:
            raise Invalid(f"lead_time_days {lead_time_days:g} is negative")
        if not name.strip() or not unit.strip():
            raise Invalid("an item needs a name and a unit (e.g. box, bottle, kit)")
        try:
            async with self.runtime.work(uow) as uow:
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
                await uow.session.flush()  # a concurrent create shows here, as a broken unique constraint
        except IntegrityError as exc:
            raise Conflict(f"sku {sku} or item {item_id} already exists") from exc
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
        uow: UnitOfWork | None = None,
    ) -> Depot:
        domain.check_choice(kind, domain.DEPOT_KINDS, "depot kind")
        domain.check_coordinates(lat, lon)
        if not name.strip():
            raise Invalid("a depot needs a name")
        try:
            async with self.runtime.work(uow) as uow:
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
                await uow.session.flush()  # a concurrent create shows here, as a broken unique constraint
        except IntegrityError as exc:
            raise Conflict(f"depot {name!r} or {depot_id} already exists") from exc
        return depot

    async def items(self) -> list[Item]:
        async with self.runtime.db.session() as session:
            return list((await session.execute(select(Item).order_by(Item.category, Item.sku))).scalars())

    async def depots(self) -> list[Depot]:
        async with self.runtime.db.session() as session:
            return list((await session.execute(select(Depot).order_by(Depot.name))).scalars())

    async def set_policy(
        self,
        item_id: str,
        depot_id: str,
        minimum: float | None,
        lead_time_days: float | None,
        *,
        uow: UnitOfWork | None = None,
    ) -> Position:
        """A depot's own minimum and lead time for an item; re-assessed at once."""
        if minimum is not None and minimum < 0:
            raise Invalid(f"minimum {minimum:g} is negative")
        if lead_time_days is not None and lead_time_days < 0:
            raise Invalid(f"lead_time_days {lead_time_days:g} is negative")
        async with self.runtime.work(uow) as uow:
            await self._known(uow, item_id, depot_id)
            balances = await self._lock(uow, [(item_id, depot_id)], create=True)
            balance = balances[(item_id, depot_id)]
            balance.minimum = minimum
            balance.lead_time_days = lead_time_days
            balance.updated_at = self.clock.now()
            await self._announce(uow, [(item_id, depot_id)])
        return (await self.positions(item_id=item_id, depot_id=depot_id))[0]
