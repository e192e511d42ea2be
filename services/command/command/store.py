"""Where problems become rows: tickets by open key, new tickets, history, heat-map signals,
check-in facts, residents and the places of buildings.

A route or a job gets a `SessionStore`, which writes through the unit of work's session. A
consumer's batch is one transaction of thousands of events: `Stores.begin` (the consumer's
`prepare` hook) loads the open tickets and places it concerns in one query each and hands
out a `BatchStore`, which keeps the batch's new rows and writes them together at `flush`
(the `finish` hook): COPY on PostgreSQL, an executemany INSERT on SQLite.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import insert, select

from command import domain
from command.models import CheckinFact, KnownBuilding, KnownResident, Signal, Ticket, TicketLog
from common.db import Database, bulk_insert, insert_missing
from common.events.base import Event
from common.outbox import UnitOfWork

Place = tuple[str | None, float | None, float | None]  # a building's grid, lat and lon
FACT_KEY = ("resident_id", "date", "kind")
MAX_CACHED_PLACES = 10_000


class NewTicket(SimpleNamespace):
    """A ticket opened in this transaction: its columns as attributes, inserted as a row.
    A sweep opens tens of thousands, and a `Ticket` model costs far more to build."""

    ticket_id: str
    open_key: str | None
    stage: str
    owner: str
    priority: str


TicketRow = Ticket | NewTicket  # what intake reads and changes: a loaded ticket or a new one


class Places:
    """The grid and coordinates of buildings, cached per replica for `ttl_s`: buildings are
    few and rarely change, and a sweep names the same ones thousands of times."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[Place | None, float]] = {}

    def get(self, building_id: str, now: float) -> tuple[bool, Place | None]:
        hit = self._known.get(building_id)
        if hit and now - hit[1] < self.ttl_s:
            return True, hit[0]
        return False, None

    def stale(self, building_ids: set[str], now: float) -> list[str]:
        return [b for b in building_ids if now - self._known.get(b, (None, -1e9))[1] >= self.ttl_s]

    def put(self, building_id: str, place: Place | None, now: float) -> None:
        if len(self._known) >= MAX_CACHED_PLACES:
            self._known.clear()
        self._known[building_id] = (place, now)

    def forget(self, building_id: str) -> None:
        self._known.pop(building_id, None)


class Store(Protocol):
    async def open_ticket(self, open_key: str) -> TicketRow | None:
        """The ticket of this problem that is not closed, if any."""
        ...

    async def add_ticket(self, values: dict[str, Any]) -> NewTicket: ...

    def add_log(self, ticket_id: str, line: domain.LogLine) -> None: ...

    def add_signal(self, values: dict[str, Any]) -> None: ...

    async def record_fact(self, resident_id: str, day: date, kind: str) -> None: ...

    async def resident(self, resident_id: str) -> KnownResident | None: ...

    async def learn_resident(
        self, resident_id: str, grid_id: str, building_id: str, lat: float | None, lon: float | None, at: datetime
    ) -> None:
        """Where a resident lives now, and their building's grid and place."""
        ...

    async def place(self, building_id: str) -> Place | None:
        """A building's grid and coordinates, as the command center has learned them."""
        ...

    async def flush(self) -> None: ...


def log_row(ticket_id: str, line: domain.LogLine) -> dict[str, Any]:
    return dict(ticket_id=ticket_id, action=line.action, from_stage=line.from_stage, to_stage=line.to_stage,
                by=line.by[:60], at=line.at, note=(line.note or None) and line.note[:2000], owner=line.owner,
                satisfaction=line.satisfaction, event_id=line.event_id)  # fmt: skip


class _Learning:
    """What both stores do alike: where residents live and what buildings are. The batch
    store remembers the rows it added, which its session does not flush before a lookup."""

    session: Any
    places: Places

    async def resident(self, resident_id: str) -> KnownResident | None:
        return await self.session.get(KnownResident, resident_id)

    async def _building(self, building_id: str) -> KnownBuilding | None:
        return await self.session.get(KnownBuilding, building_id)

    def _keep(self, resident: KnownResident, building: KnownBuilding) -> None:
        pass

    async def learn_resident(
        self, resident_id: str, grid_id: str, building_id: str, lat: float | None, lon: float | None, at: datetime
    ) -> None:
        resident = await self.resident(resident_id)
        if resident is None:
            resident = KnownResident(
                resident_id=resident_id, grid_id=grid_id, building_id=building_id, lat=lat, lon=lon, registered_at=at
            )
            self.session.add(resident)
        else:
            resident.grid_id, resident.building_id = grid_id, building_id
            resident.lat, resident.lon = lat, lon
        building = await self._building(building_id)
        if building is None:
            building = KnownBuilding(building_id=building_id, grid_id=grid_id, lat=lat, lon=lon)
            self.session.add(building)
        else:
            building.grid_id = grid_id
            if building.lat is None and lat is not None:
                building.lat, building.lon = lat, lon
        self._keep(resident, building)
        self.places.forget(building_id)


class SessionStore(_Learning):
    """Writes through the unit of work's session, as a route or a job does."""

    def __init__(self, uow: UnitOfWork, places: Places) -> None:
        self.session = uow.session
        self.places = places

    async def open_ticket(self, open_key: str) -> TicketRow | None:
        return await self.session.scalar(select(Ticket).where(Ticket.open_key == open_key))

    async def add_ticket(self, values: dict[str, Any]) -> NewTicket:
        await self.session.execute(insert(Ticket.__table__), [values])
        return NewTicket(**values)

    def add_log(self, ticket_id: str, line: domain.LogLine) -> None:
        self.session.add(TicketLog(**log_row(ticket_id, line)))

    def add_signal(self, values: dict[str, Any]) -> None:
        self.session.add(Signal(**values))

    async def record_fact(self, resident_id: str, day: date, kind: str) -> None:
        await insert_missing(
            self.session, CheckinFact.__table__, [{"resident_id": resident_id, "date": day, "kind": kind}], FACT_KEY
        )

    async def place(self, building_id: str) -> Place | None:
        now = time.monotonic()
        cached, place = self.places.get(building_id, now)
        if cached:
            return place
        row = await self._building(building_id)
        place = (row.grid_id, row.lat, row.lon) if row else None
        self.places.put(building_id, place, now)
        return place

    async def flush(self) -> None:
        """Nothing is kept back: the unit of work's commit writes it all."""


class BatchStore(_Learning):
    """A consumer batch's rows, kept until `flush`. The session does not autoflush: lookups of
    rows added earlier in the batch go through this store, and everything is written once."""

    def __init__(self, uow: UnitOfWork, places: Places) -> None:
        self.session = uow.session
        self.session.sync_session.autoflush = False
        self.places = places
        self.started = time.monotonic()  # a place found fresh when the batch began stays fresh until it ends
        self.tickets: dict[str, TicketRow] = {}  # by open key: loaded, or opened in this batch
        self.looked_up: set[str] = set()  # open keys loaded at `load` (an absent one needs no query)
        self.new_tickets: list[NewTicket] = []
        self.logs: list[dict[str, Any]] = []
        self.signals: list[dict[str, Any]] = []
        self.facts: set[tuple[str, date, str]] = set()
        self.residents: dict[str, KnownResident] = {}
        self.buildings: dict[str, KnownBuilding] = {}

    async def load(self, db: Database, open_keys: set[str], building_ids: set[str]) -> None:
        """The open tickets and the places of buildings the batch concerns, in a query each."""
        self.looked_up = open_keys
        if open_keys:
            for ticket in (
                await self.session.execute(select(Ticket).where(db.any_of(Ticket.open_key, open_keys)))
            ).scalars():
                self.tickets[ticket.open_key] = ticket
        now = time.monotonic()
        stale = self.places.stale(building_ids, now)
        if stale:
            columns = (KnownBuilding.building_id, KnownBuilding.grid_id, KnownBuilding.lat, KnownBuilding.lon)
            rows = (
                await self.session.execute(select(*columns).where(db.any_of(KnownBuilding.building_id, stale)))
            ).all()
            found = {building_id: (grid_id, lat, lon) for building_id, grid_id, lat, lon in rows}
            for building_id in stale:
                self.places.put(building_id, found.get(building_id), now)

    async def open_ticket(self, open_key: str) -> TicketRow | None:
        ticket = self.tickets.get(open_key)
        if ticket is None and open_key not in self.looked_up:
            ticket = await self.session.scalar(select(Ticket).where(Ticket.open_key == open_key))
            if ticket is not None:
                self.tickets[open_key] = ticket
        return ticket

    async def add_ticket(self, values: dict[str, Any]) -> NewTicket:
        ticket = NewTicket(**values)
        self.new_tickets.append(ticket)
        self.tickets[values["open_key"]] = ticket
        return ticket

    def add_log(self, ticket_id: str, line: domain.LogLine) -> None:
        self.logs.append(log_row(ticket_id, line))

    def add_signal(self, values: dict[str, Any]) -> None:
        self.signals.append(values)

    async def record_fact(self, resident_id: str, day: date, kind: str) -> None:
        self.facts.add((resident_id, day, kind))

    async def resident(self, resident_id: str) -> KnownResident | None:
        return self.residents.get(resident_id) or await self.session.get(KnownResident, resident_id)

    async def _building(self, building_id: str) -> KnownBuilding | None:
        return self.buildings.get(building_id) or await self.session.get(KnownBuilding, building_id)

    def _keep(self, resident: KnownResident, building: KnownBuilding) -> None:
        self.residents[resident.resident_id] = resident
        self.buildings[building.building_id] = building

    async def place(self, building_id: str) -> Place | None:
        cached, place = self.places.get(building_id, self.started)
        if cached:
            return place
        row = await self._building(building_id)
        place = (row.grid_id, row.lat, row.lon) if row else None
        self.places.put(building_id, place, time.monotonic())
        return place

    async def flush(self) -> None:
        """The batch's new rows, together: tickets, history, signals, check-in facts."""
        await bulk_insert(self.session, Ticket.__table__, [vars(t) for t in self.new_tickets])
        await bulk_insert(self.session, TicketLog.__table__, self.logs)
        await bulk_insert(self.session, Signal.__table__, self.signals)
        facts = [{"resident_id": r, "date": d, "kind": k} for r, d, k in self.facts]
        await insert_missing(self.session, CheckinFact.__table__, facts, FACT_KEY)
        self.new_tickets, self.logs, self.signals, self.facts = [], [], [], set()


class Stores:
    """The store of each unit of work: a consumer batch's, between `begin` and `flush`, or one
    that writes through. Holds the replica's cache of places."""

    def __init__(self, db: Database, config: Callable[[], Awaitable[domain.Config]], places_ttl_s: float) -> None:
        self.db = db
        self.config = config
        self.places = Places(places_ttl_s)
        self._batches: weakref.WeakKeyDictionary[UnitOfWork, BatchStore] = weakref.WeakKeyDictionary()

    def of(self, uow: UnitOfWork) -> Store:
        return self._batches.get(uow) or SessionStore(uow, self.places)

    async def begin(self, uow: UnitOfWork, events: Sequence[Event]) -> None:
        """Before a consumer applies a batch: load the open tickets and the places it concerns."""
        config = await self.config()
        open_keys = set()
        for event in events:
            rule = config.rule(f"event:{event.event_type()}")
            if rule is not None:
                open_keys.add(domain.open_key(rule.kind, event.subject()))
        building_ids = {b for e in events if isinstance(b := getattr(e, "building_id", None), str)}
        batch = self._batches[uow] = BatchStore(uow, self.places)
        await batch.load(self.db, open_keys, building_ids)

    async def flush(self, uow: UnitOfWork) -> None:
        """After a consumer applied a batch, before it commits: the batch's rows."""
        batch = self._batches.pop(uow, None)
        if batch is not None:
            await batch.flush()
