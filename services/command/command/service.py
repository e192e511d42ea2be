"""Command-center use cases: load, decide (domain), save and stage events, in one transaction.

Consumers (handlers.py), routes (api.py) and periodic jobs (jobs.py) all call these.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import h3
from common import envelope as ce
from common.clock import day_bounds, local_date
from common.db import COPY_PAYS_FROM, bulk_insert, copy_if_all_new, insert_ignore
from common.errors import Forbidden, Invalid, NotFound
from common.events.base import Event
from common.events.command import (
    TicketAcknowledged,
    TicketClosed,
    TicketEscalated,
    TicketOpened,
    TicketReassigned,
    TicketReopened,
    TicketResolved,
    TicketUpdated,
)
from common.metrics import LoopHistogram
from common.notify import Notification, Notifier, NotifyFailed, Recipient
from common.outbox import UnitOfWork
from common.runtime import Runtime
from prometheus_client import Counter
from sqlalchemy import Date, String, and_, any_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from command import defaults, domain
from command.models import (
    CheckinFact,
    DepartmentRow,
    EscalationRow,
    KnownBuilding,
    KnownResident,
    PersonRow,
    RuleRow,
    Signal,
    SlaRow,
    Ticket,
    TicketLog,
)
from command.settings import CommandSettings

log = logging.getLogger(__name__)

# Columns of a new ticket that start at zero. Those that start empty (acknowledged_at, resolution,
# satisfaction, ...) are left out: NULL by default, and a COPY of nine fewer columns per ticket
# spares ~1.5 us of the consumer's CPU each (issue 3, fifth session).
NEW_TICKET = dict(escalation_level=0, reopen_count=0)
# A batch's check-in facts on PostgreSQL: unnest three arrays, skip what is already known.
FACTS_FROM_ARRAYS = text(
    "INSERT INTO checkin_fact (resident_id, date, kind) "
    "SELECT * FROM unnest(:residents, :days, :kinds) ON CONFLICT (resident_id, date, kind) DO NOTHING"
).bindparams(
    bindparam("residents", type_=ARRAY(String)), bindparam("days", type_=ARRAY(Date)), bindparam("kinds", type_=ARRAY(String))
)
MAX_SOURCE_IDS = 50  # a ticket remembers its latest source events, not all of a long streak
PRIORITY_ORDER = {p: i for i, p in enumerate(domain.PRIORITIES)}


class CommandService:
    def __init__(self, runtime: Runtime, settings: CommandSettings, notifier: Notifier) -> None:
        self.runtime = runtime
        self.settings = settings
        self.notifier = notifier
        self.tz = settings.tz
        self._config: domain.Config | None = None
        self._seeded = asyncio.Event()
        self._buildings: dict[str, tuple[tuple[str | None, float | None, float | None] | None, float]] = {}
        self._config_loaded = 0.0
        self._opened = Counter(
            "firstline_command_tickets_opened_total", "Tickets opened, by kind", ["kind"], registry=runtime.registry
        )
        self._opened_by_kind: dict[str, Any] = {}  # the counter's children, looked up once per kind
        self._transitions = Counter(
            "firstline_command_transitions_total",
            "Ticket transitions, by action",
            ["action"],
            registry=runtime.registry,
        )
        self._escalations = Counter(
            "firstline_command_escalations_total", "Tickets escalated, by level", ["level"], registry=runtime.registry
        )
        self._latency = LoopHistogram(  # observed per event: a sweep's thousands
            "firstline_command_event_to_ticket_seconds",
            "From an event's time to its ticket being opened or updated",
            (),
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=runtime.registry,
        ).labels()

    @property
    def clock(self):
        return self.runtime.clock

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    # -- configuration ----------------------------------------------------------------

    async def config(self) -> domain.Config:
        """Rules, SLA and directory, cached for COMMAND_CONFIG_CACHE_S (edits here clear it)."""
        if self._config is not None and time.monotonic() - self._config_loaded < self.settings.config_cache_s:
            return self._config
        if not self._seeded.is_set():  # the consumer and jobs may start before the start-up seeding ends
            await asyncio.wait_for(self._seeded.wait(), timeout=60)
        async with self.runtime.db.session() as session:
            departments = (await session.execute(select(DepartmentRow))).scalars().all()
            people = (await session.execute(select(PersonRow))).scalars().all()
            rules = (await session.execute(select(RuleRow))).scalars().all()
            slas = (await session.execute(select(SlaRow))).scalars().all()
        self._config = domain.Config(
            rules={r.trigger: _rule(r) for r in rules},
            sla=tuple(_sla(s) for s in slas),
            people={p.person_id: _person(p) for p in people},
            departments={d.department_id: _department(d) for d in departments},
        )
        self._config_loaded = time.monotonic()
        return self._config

    async def seed(self) -> int:
        """At start-up: fill empty configuration tables from the rules file (never overwrite)."""
        try:
            if not self.settings.seed_defaults:
                return 0
            async with self.runtime.db.session() as session:
                if await session.scalar(select(func.count()).select_from(DepartmentRow)):
                    return 0
                return await self._seed(session)
        finally:
            self.forget_config()
            self._seeded.set()

    def forget_config(self) -> None:
        self._config = None

    async def _seed(self, session) -> int:
        """Insert the rules file's rows that are missing; existing rows are never overwritten."""
        loaded = defaults.load(self.settings.rules_file)
        added = 0
        for d in loaded.departments:
            added += await insert_ignore(session, DepartmentRow, _department_row(d).model_dump(), ["department_id"])
        for p in loaded.people:
            added += await insert_ignore(session, PersonRow, _person_row(p).model_dump(), ["person_id"])
        for r in loaded.rules:
            added += await insert_ignore(session, RuleRow, _rule_row(r, "defaults", self.clock.now()).model_dump(), ["trigger"])
        for s in loaded.sla:
            added += await insert_ignore(session, SlaRow, _sla_row(s).model_dump(), ["kind", "priority"])
        await session.commit()
        log.info("seeded %d configuration rows from %s", added, self.settings.rules_file or defaults.PACKAGED)
        return added

    async def restore_defaults(self) -> int:
        async with self.runtime.db.session() as session:
            added = await self._seed(session)
        self.forget_config()
        return added

    async def save_rule(self, rule: domain.Rule, by: str) -> RuleRow:
        config = await self.config()
        domain.check_rule(rule, config.departments)
        async with self.runtime.db.session() as session:
            row = _rule_row(rule, by, self.clock.now())
            await session.merge(row)
            await session.commit()
        self.forget_config()
        return row

    async def save_sla(self, sla: domain.Sla) -> SlaRow:
        config = await self.config()
        if sla.kind != "*" and sla.kind not in {r.kind for r in config.rules.values()}:
            raise Invalid(f"no rule makes tickets of kind {sla.kind!r}; known: {', '.join(sorted({r.kind for r in config.rules.values()}))}")
        domain.check_sla(sla)
        async with self.runtime.db.session() as session:
            row = _sla_row(sla)
            await session.merge(row)
            await session.commit()
        self.forget_config()
        return row

    async def save_person(self, person: domain.Person) -> PersonRow:
        config = await self.config()
        people = {**config.people, person.person_id: person}
        domain.check_person(person, people, config.departments)
        async with self.runtime.db.session() as session:
            row = _person_row(person)
            await session.merge(row)
            await session.commit()
        self.forget_config()
        return row

    async def save_department(self, department: domain.Department) -> DepartmentRow:
        config = await self.config()
        if department.default_owner and department.default_owner not in config.people:
            raise Invalid(f"unknown default_owner {department.default_owner!r}: add them to the directory first")
        async with self.runtime.db.session() as session:
            row = _department_row(department)
            await session.merge(row)
            await session.commit()
        self.forget_config()
        return row

    # -- problems into tickets --------------------------------------------------------

    async def take_report(
        self, uow: UnitOfWork, report: domain.Report, source: ce.CloudEvent | None = None
    ) -> Ticket | None:
        """The one use case for every problem, from an event or by hand: open a ticket, or
        update the open ticket of the same problem. None when no rule routes it."""
        config = await self.config()
        if not config.rules:  # an empty rules table: retry (and dead-letter) rather than drop the event
            self.forget_config()
            raise RuntimeError("no routing rules are configured")
        report = await self._locate(uow, report)
        routing = domain.route(report, config)
        if routing is None:
            return None
        now = self.clock.now()
        by = _source_name(source) if source else (report.reported_by or "unknown")
        event_ids = [source.id] if source else []
        # Tickets this transaction touched: a batch may hold two events about one problem.
        # Everything else is flushed once, at commit (no autoflush before each query).
        touched = self._batch(uow)
        ticket = touched.get(("ticket", routing.open_key))
        if ticket is None and routing.open_key not in touched.get(("prefetched", "tickets"), ()):
            ticket = await uow.session.scalar(select(Ticket).where(Ticket.open_key == routing.open_key))
        if ticket is None:
            ticket = self._open(uow, report, routing, config, now, by, event_ids)
        else:
            self._update(uow, ticket, report, routing, config, now, by, event_ids)
        touched[("ticket", routing.open_key)] = ticket
        if report.lat is not None and report.lon is not None:
            self._add(
                uow,
                Signal,
                dict(
                    kind=domain.SIGNAL_KINDS.get(report.trigger.removeprefix("event:"), routing.kind),
                    h3_cell=h3.latlng_to_cell(report.lat, report.lon, self.settings.h3_resolution),
                    lat=report.lat,
                    lon=report.lon,
                    at=now,
                    ticket_id=ticket.ticket_id,
                )
            )
        if source:
            self._latency.observe(max((now - source.time).total_seconds(), 0.0))
        return ticket

    def _batch(self, uow: UnitOfWork) -> dict[tuple[str, str], Any]:
        """What this transaction has touched, by (table, key): the unit of work's memo. A
        consumer's batch of events is one transaction: it is flushed once, at commit, not
        before every query (autoflush off), so lookups of rows added earlier in the batch go
        through this map."""
        uow.session.sync_session.autoflush = False
        return uow.memo

    def _open(self, uow, report, routing, config, now, by, event_ids) -> Ticket:
        due = domain.deadlines(config.sla_for(routing.kind, routing.priority), now, self.tz)
        values = dict(
            ticket_id="T-" + os.urandom(6).hex(),  # what secrets.token_hex(6) does, without its layers
            open_key=routing.open_key,
            kind=routing.kind,
            category=report.trigger.removeprefix("category:") if report.trigger.startswith("category:") else None,
            trigger=report.trigger,
            subject_id=report.subject_id,
            title=routing.title,
            description=report.description,
            action=routing.action,
            stage="discovered",
            priority=routing.priority,
            department=routing.department,
            owner=routing.owner.person_id,
            grid_id=report.grid_id,
            building_id=report.building_id,
            resident_id=report.resident_id,
            lat=report.lat,
            lon=report.lon,
            facts=dict(report.facts),
            shares=dict(routing.shares),
            source_event_ids=event_ids,
            event_count=1,
            reported_by=report.reported_by,
            opened_by=by[:60],
            opened_owner=routing.owner.person_id,
            respond_by=due.respond_by,
            resolve_by=due.resolve_by,
            next_check_at=due.respond_by,
            opened_at=now,
            updated_at=now,
            **NEW_TICKET,
        )
        ticket = self._add(uow, Ticket, values)  # its history's "open" entry is derived from it: `_opening`
        uow.emit(
            TicketOpened(
                ticket_id=ticket.ticket_id,
                kind=ticket.kind,
                priority=ticket.priority,
                owner=ticket.owner,
                department=ticket.department,
                respond_by=ticket.respond_by,
                resolve_by=ticket.resolve_by,
                source_event_ids=event_ids,
                subject_id=ticket.subject_id,
                title=ticket.title,
                grid_id=ticket.grid_id,
                building_id=ticket.building_id,
                category=ticket.category,
                resident_id=ticket.resident_id,
            ),
            at=now,
        )
        self._share(uow, ticket, now)
        opened = self._opened_by_kind.get(ticket.kind)
        if opened is None:
            opened = self._opened_by_kind[ticket.kind] = self._opened.labels(ticket.kind)
        opened.inc()
        return ticket

    def _update(self, uow, ticket: Ticket, report, routing, config, now, by, event_ids) -> None:
        """A new event about an open problem joins its ticket. On a resolved ticket it says
        the problem is back: the ticket is reopened with fresh deadlines."""
        stage = domain.transition(ticket.stage, "update")
        previous_stage = ticket.stage
        ticket.event_count += 1
        ticket.source_event_ids = (ticket.source_event_ids + event_ids)[-MAX_SOURCE_IDS:]
        ticket.facts = {**ticket.facts, **report.facts}
        ticket.title = routing.title
        ticket.action = routing.action or ticket.action
        ticket.updated_at = now
        priority = domain.higher(ticket.priority, routing.priority)
        raised = priority != ticket.priority
        ticket.priority = priority
        if stage == "reopened":
            self._reopen(ticket, config, now)
            ticket.stage = stage
            self._log(uow, ticket, "reopen", previous_stage, by, now, note=f"{report.trigger} again after resolution", event_id=event_ids[0] if event_ids else None)
            uow.emit(TicketReopened(**self._transition(ticket, now, by), reason=f"{report.trigger.removeprefix('event:')} again after it was resolved"))
            self._share(uow, ticket, now)
            return
        if raised:
            fresh = domain.deadlines(config.sla_for(ticket.kind, priority), now, self.tz)
            due = domain.tighter(domain.Deadlines(ticket.respond_by, ticket.resolve_by), fresh)
            ticket.respond_by, ticket.resolve_by = due.respond_by, due.resolve_by
            ticket.next_check_at = domain.next_check(ticket.stage, due.respond_by, due.resolve_by)
        self._log(uow, ticket, "update", previous_stage, by, now, event_id=event_ids[0] if event_ids else None)
        uow.emit(
            TicketUpdated(
                **self._transition(ticket, now, by),
                source_event_ids=event_ids,
                priority=ticket.priority if raised else None,
            )
        )
        if raised:
            self._share(uow, ticket, now)

    def _reopen(self, ticket: Ticket, config: domain.Config, now: datetime) -> None:
        due = domain.deadlines(config.sla_for(ticket.kind, ticket.priority), now, self.tz)
        ticket.respond_by, ticket.resolve_by = due.respond_by, due.resolve_by
        ticket.next_check_at = due.respond_by
        ticket.reopen_count += 1
        ticket.escalation_level = 0  # the new deadlines escalate from the first level again
        ticket.acknowledged_at = ticket.acknowledged_by = None
        ticket.resolved_at = ticket.resolved_by = None

    async def _locate(self, uow: UnitOfWork, report: domain.Report) -> domain.Report:
        """Fill in the grid, building and coordinates the command center has learned."""
        if report.lat is not None and report.lon is not None and report.grid_id and report.building_id:
            return report
        grid_id, building_id, lat, lon = report.grid_id, report.building_id, report.lat, report.lon
        if report.resident_id and not (grid_id and building_id):
            resident = self._batch(uow).get(("resident", report.resident_id)) or await uow.session.get(
                KnownResident, report.resident_id
            )
            if resident:
                grid_id, building_id = grid_id or resident.grid_id, building_id or resident.building_id
                if lat is None and resident.lat is not None:
                    lat, lon = resident.lat, resident.lon
        if building_id and (lat is None or not grid_id):
            place = await self._building(uow, building_id)
            if place:
                grid_id = grid_id or place[0]
                if lat is None and place[1] is not None:
                    lat, lon = place[1], place[2]
        if (grid_id, building_id, lat, lon) == (report.grid_id, report.building_id, report.lat, report.lon):
            return report  # nothing learned: spare the copy
        return replace(report, grid_id=grid_id, building_id=building_id, lat=lat, lon=lon)

    async def _building(self, uow: UnitOfWork, building_id: str) -> tuple[str | None, float | None, float | None] | None:
        """A building's grid and coordinates. Buildings are few and rarely change: a short
        cache spares a query per event when a sweep brings thousands of missed check-ins."""
        touched = self._batch(uow)
        # In a consumer's batch, a place `prefetch` found fresh stays fresh until the batch ends:
        # checked against the clock, the places cached ~5 s earlier expired in mid-batch and
        # cost a query each (2% of a sweep's events, 2.5% of a replica's CPU).
        now = touched.get(("batch", "started")) or time.monotonic()
        hit = self._buildings.get(building_id)
        if hit and now - hit[1] < self.settings.config_cache_s:
            return hit[0]
        row = touched.get(("building", building_id)) or await uow.session.get(KnownBuilding, building_id)
        place = (row.grid_id, row.lat, row.lon) if row else None
        if len(self._buildings) > 10_000:
            self._buildings.clear()
        self._buildings[building_id] = (place, time.monotonic())
        return place

    async def report_by_hand(
        self,
        actor: domain.Actor,
        *,
        category: str,
        description: str,
        resident_id: str | None = None,
        building_id: str | None = None,
        grid_id: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        priority: str | None = None,
    ) -> Ticket:
        """POST /tickets: a problem reported by staff or a resident, routed by the same rules.
        Each report is its own problem (its subject is new)."""
        if actor.role not in domain.REPORTER_ROLES:
            raise Forbidden(f"role {actor.role!r} cannot report problems")
        if actor.role == "resident":
            if resident_id and resident_id != actor.sub:
                raise Invalid("residents report problems about themselves: leave resident_id out or use your own")
            resident_id = actor.sub
        config = await self.config()
        trigger = f"category:{category}"
        if config.rule(trigger) is None:
            known = sorted(t.removeprefix("category:") for t, r in config.rules.items() if t.startswith("category:") and r.enabled)
            raise Invalid(f"unknown category {category!r}; known: {', '.join(known)}")
        if (lat is None) != (lon is None):
            raise Invalid("give both lat and lon, or neither")
        report = domain.Report(
            trigger=trigger,
            subject_id=uuid.uuid4().hex,
            facts={"category": category},
            grid_id=grid_id,
            building_id=building_id,
            resident_id=resident_id,
            lat=lat,
            lon=lon,
            description=description,
            reported_by=actor.sub,
            priority=priority,
        )
        async with self.uow() as uow:
            ticket = await self.take_report(uow, report)
            await uow.commit()
        return ticket

    # -- what other services tell us ----------------------------------------------------

    async def learn_resident(self, uow: UnitOfWork, resident_id: str, grid_id: str, building_id: str,
                             lat: float | None, lon: float | None, at: datetime) -> None:
        touched = self._batch(uow)
        resident = touched.get(("resident", resident_id)) or await uow.session.get(KnownResident, resident_id)
        if resident is None:
            resident = KnownResident(resident_id=resident_id, grid_id=grid_id, building_id=building_id, lat=lat, lon=lon, registered_at=at)
            uow.session.add(resident)
        else:
            resident.grid_id, resident.building_id = grid_id, building_id
            resident.lat, resident.lon = lat, lon
        touched[("resident", resident_id)] = resident
        building = touched.get(("building", building_id)) or await uow.session.get(KnownBuilding, building_id)
        if building is None:
            building = KnownBuilding(building_id=building_id, grid_id=grid_id, lat=lat, lon=lon)
            uow.session.add(building)
        else:
            building.grid_id = grid_id
            if building.lat is None and lat is not None:
                building.lat, building.lon = lat, lon
        touched[("building", building_id)] = building
        self._buildings.pop(building_id, None)

    async def prefetch(self, uow: UnitOfWork, events: Sequence[Event]) -> None:
        """Before a consumer applies a batch: load the open tickets it concerns in one query
        (a key found absent needs no query later), and collect check-in facts for `flush`."""
        touched = self._batch(uow)
        touched[("batch", "")] = True
        touched[("batch", "started")] = time.monotonic()
        config = await self.config()
        keys = set()
        for event in events:
            rule = config.rule(f"event:{event.event_type()}")
            if rule is not None:
                keys.add(f"{rule.kind}:{event.subject()}"[:200])
        if keys:
            # One array parameter on PostgreSQL, so the statement is the same for every batch:
            # an IN list of 1,000 parameters was planned as a scan of the whole table.
            if self.runtime.db.is_postgres:
                wanted = Ticket.open_key == any_(bindparam("open_keys", list(keys), type_=ARRAY(String)))
            else:
                wanted = Ticket.open_key.in_(keys)
            for ticket in (await uow.session.execute(select(Ticket).where(wanted))).scalars():
                touched[("ticket", ticket.open_key)] = ticket
        touched[("prefetched", "tickets")] = keys
        await self._load_buildings(uow, {b for e in events if isinstance(b := getattr(e, "building_id", None), str)})

    async def _load_buildings(self, uow: UnitOfWork, building_ids: set[str]) -> None:
        """The places of a batch's buildings that are not cached (or cached too long ago), in
        one query: a sweep's batch names hundreds of buildings, and a query each was more of
        the consumer's time than anything but the ticket itself."""
        now = time.monotonic()
        stale = [b for b in building_ids if now - self._buildings.get(b, (None, -1e9))[1] >= self.settings.config_cache_s]
        if not stale:
            return
        if self.runtime.db.is_postgres:
            wanted = KnownBuilding.building_id == any_(bindparam("building_ids", stale, type_=ARRAY(String)))
        else:
            wanted = KnownBuilding.building_id.in_(stale)
        rows = (await uow.session.execute(select(KnownBuilding.building_id, KnownBuilding.grid_id, KnownBuilding.lat, KnownBuilding.lon).where(wanted))).all()
        found = {building_id: (grid_id, lat, lon) for building_id, grid_id, lat, lon in rows}
        if len(self._buildings) + len(stale) > 10_000:
            self._buildings.clear()
        for building_id in stale:
            self._buildings[building_id] = (found.get(building_id), now)

    async def flush(self, uow: UnitOfWork) -> None:
        """After a consumer applied a batch, before it commits: the deferred check-in facts."""
        touched = self._batch(uow)
        for table in ("ticket", "ticket_log", "signal"):
            model, rows = touched.pop(("rows", table), (None, None))
            if rows:  # COPY on PostgreSQL
                await bulk_insert(uow.session, model.__table__, [vars(r) if isinstance(r, SimpleNamespace) else r for r in rows])
        facts = touched.pop(("facts", ""), None)
        if facts and self.runtime.db.is_postgres:
            # A sweep's facts are new: COPY them (half the server's work of ON CONFLICT); if one
            # is known already, one statement with three arrays skips those.
            rows = [{"resident_id": r, "date": d, "kind": k} for r, d, k in facts]
            if len(rows) < COPY_PAYS_FROM or not await copy_if_all_new(uow.session, CheckinFact.__table__, rows):
                residents, days, kinds = zip(*facts, strict=True)
                await uow.session.execute(FACTS_FROM_ARRAYS, {"residents": list(residents), "days": list(days), "kinds": list(kinds)})
        elif facts:
            await uow.session.execute(
                sqlite_insert(CheckinFact.__table__).on_conflict_do_nothing(index_elements=["resident_id", "date", "kind"]),
                [{"resident_id": r, "date": d, "kind": k} for r, d, k in facts],
            )

    async def record_checkin_fact(self, uow: UnitOfWork, resident_id: str, day: date, kind: str) -> None:
        touched = self._batch(uow)
        if touched.get(("batch", "")):
            touched.setdefault(("facts", ""), set()).add((resident_id, day, kind))
            return
        await insert_ignore(uow.session, CheckinFact, {"resident_id": resident_id, "date": day, "kind": kind}, ["resident_id", "date", "kind"])

    async def record_signal(self, uow: UnitOfWork, kind: str, resident_id: str | None, lat: float | None, lon: float | None) -> None:
        """A located problem that is not a ticket here (a request for help): the heat map only."""
        report = await self._locate(uow, domain.Report(trigger=kind, subject_id="", resident_id=resident_id, lat=lat, lon=lon))
        if report.lat is None or report.lon is None:
            return
        self._add(
            uow,
            Signal,
            dict(kind=kind, h3_cell=h3.latlng_to_cell(report.lat, report.lon, self.settings.h3_resolution),
                 lat=report.lat, lon=report.lon, at=self.clock.now(), ticket_id=None),
        )  # fmt: skip

    # -- the lifecycle ------------------------------------------------------------------

    async def acknowledge(self, actor: domain.Actor, ticket_id: str, note: str | None = None) -> Ticket:
        async with self.uow() as uow:
            ticket = await self._for_update(uow, ticket_id)
            domain.ensure_can_work(actor, _scope(ticket), "acknowledge")
            now = self.clock.now()
            previous = ticket.stage
            ticket.stage = domain.transition(ticket.stage, "acknowledge")
            ticket.acknowledged_at, ticket.acknowledged_by = now, actor.sub
            ticket.next_check_at = domain.next_check(ticket.stage, ticket.respond_by, ticket.resolve_by)
            ticket.updated_at = now
            self._log(uow, ticket, "acknowledge", previous, actor.sub, now, note=note)
            uow.emit(TicketAcknowledged(**self._transition(ticket, now, actor.sub)))
            self._share(uow, ticket, now)
            await uow.commit()
        self._transitions.labels("acknowledge").inc()
        return ticket

    async def resolve(self, actor: domain.Actor, ticket_id: str, resolution: str) -> Ticket:
        if not resolution.strip():
            raise Invalid("resolution must say what was done")
        async with self.uow() as uow:
            ticket = await self._for_update(uow, ticket_id)
            domain.ensure_can_work(actor, _scope(ticket), "resolve")
            now = self.clock.now()
            previous = ticket.stage
            ticket.stage = domain.transition(ticket.stage, "resolve")
            ticket.resolved_at, ticket.resolved_by, ticket.resolution = now, actor.sub, resolution.strip()
            ticket.next_check_at = None
            ticket.updated_at = now
            self._log(uow, ticket, "resolve", previous, actor.sub, now, note=resolution)
            uow.emit(TicketResolved(**self._transition(ticket, now, actor.sub), resolution=ticket.resolution))
            self._share(uow, ticket, now)
            await uow.commit()
        self._transitions.labels("resolve").inc()
        return ticket

    async def feedback(self, actor: domain.Actor, ticket_id: str, satisfaction: int, comment: str | None) -> Ticket:
        """Feedback on a resolved ticket: 3–5 closes it, 1–2 reopens it with fresh deadlines."""
        domain.feedback_stage(satisfaction)
        async with self.uow() as uow:
            ticket = await self._for_update(uow, ticket_id)
            who = domain.ensure_can_give_feedback(actor, _scope(ticket))
            outcome = domain.after_feedback(ticket.stage, satisfaction)
            config = await self.config()
            now = self.clock.now()
            previous = ticket.stage
            ticket.satisfaction, ticket.feedback_comment, ticket.feedback_by = satisfaction, comment, actor.sub
            ticket.updated_at = now
            note = comment if who == "resident" else f"recorded on the resident's behalf: {comment or ''}".strip()
            if outcome == "closed":
                ticket.stage = "closed"
                ticket.closed_at = now
                ticket.open_key = None  # the next event about this subject opens a new ticket
                ticket.next_check_at = None
                self._log(uow, ticket, "feedback", previous, actor.sub, now, note=note, satisfaction=satisfaction)
                uow.emit(TicketClosed(**self._transition(ticket, now, actor.sub), satisfaction=satisfaction, comment=comment))
            else:
                ticket.stage = "reopened"
                self._reopen(ticket, config, now)
                self._log(uow, ticket, "feedback", previous, actor.sub, now, note=note, satisfaction=satisfaction)
                uow.emit(
                    TicketReopened(
                        **self._transition(ticket, now, actor.sub),
                        reason=f"satisfaction {satisfaction}: not solved",
                        satisfaction=satisfaction,
                        comment=comment,
                    )
                )
            self._share(uow, ticket, now)
            await uow.commit()
        self._transitions.labels(f"feedback_{outcome}").inc()
        return ticket

    async def reassign(self, actor: domain.Actor, ticket_id: str, owner: str, reason: str | None) -> Ticket:
        config = await self.config()
        person = config.people.get(owner)
        if person is None or not person.active:
            raise Invalid(f"{owner!r} is not an active person in the directory (GET /directory/people)")
        async with self.uow() as uow:
            ticket = await self._for_update(uow, ticket_id)
            domain.ensure_can_reassign(actor, _scope(ticket))
            domain.ensure_can_hand_over(actor, ticket.kind, person)
            domain.transition(ticket.stage, "reassign")
            if ticket.owner == owner:
                raise Invalid(f"{owner} already owns {ticket_id}")
            now = self.clock.now()
            previous_owner = ticket.owner
            ticket.owner, ticket.department = person.person_id, person.department
            department = config.departments.get(person.department)
            if department is not None and department.partner and department.department_id not in ticket.shares:
                ticket.shares = {**ticket.shares, department.department_id: ticket.action}  # its topic hears of it from now on
            ticket.updated_at = now
            self._log(uow, ticket, "reassign", ticket.stage, actor.sub, now, note=reason)
            uow.emit(TicketReassigned(**self._transition(ticket, now, actor.sub), previous_owner=previous_owner))
            self._share(uow, ticket, now)
            await uow.commit()
        self._transitions.labels("reassign").inc()
        return ticket

    async def _for_update(self, uow: UnitOfWork, ticket_id: str) -> Ticket:
        query = select(Ticket).where(Ticket.ticket_id == ticket_id)
        if self.runtime.db.is_postgres:
            query = query.with_for_update()  # two staff acting at once: the second sees the first's stage
        ticket = await uow.session.scalar(query)
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id!r}")
        return ticket

    def _transition(self, ticket: Ticket, now: datetime, by: str) -> dict[str, Any]:
        return {"ticket_id": ticket.ticket_id, "stage": ticket.stage, "owner": ticket.owner, "at": now, "by": by}

    def _log(self, uow, ticket: Ticket, action: str, previous: str | None, by: str, now: datetime, *,
             note: str | None = None, satisfaction: int | None = None, event_id: str | None = None) -> None:
        self._add(
            uow,
            TicketLog,
            dict(ticket_id=ticket.ticket_id, action=action, from_stage=previous, to_stage=ticket.stage, by=by[:60],
                 at=now, note=(note or None) and note[:2000], owner=ticket.owner, satisfaction=satisfaction, event_id=event_id),
        )  # fmt: skip

    def _add(self, uow: UnitOfWork, model: type, values: dict[str, Any]) -> Any:
        """A new row. In a consumer's batch it is inserted with the batch's others at `flush`
        (a plain object stands for a new ticket meanwhile); elsewhere it joins the session."""
        touched = self._batch(uow)
        if not touched.get(("batch", "")):
            row = model(**values)
            uow.session.add(row)
            return row
        row = SimpleNamespace(**values) if model is Ticket else values
        touched.setdefault(("rows", model.__tablename__), (model, []))[1].append(row)
        return row

    def _share(self, uow: UnitOfWork, ticket: Ticket, now: datetime) -> None:
        """Tell each partner department the ticket concerns, minimised (partner.<dept>.v1)."""
        if not ticket.shares:
            return
        snapshot = {**(vars(ticket) if isinstance(ticket, SimpleNamespace) else ticket.model_dump()), "at": now}
        for department, action in ticket.shares.items():
            message = domain.partner_event(department, snapshot, action)
            if message is not None:
                uow.emit(message)

    # -- reading tickets ----------------------------------------------------------------

    async def ticket(self, actor: domain.Actor, ticket_id: str) -> tuple[Ticket, list[TicketLog]]:
        async with self.runtime.db.session() as session:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None or not domain.can_see(actor, _scope(ticket)):
                raise NotFound(f"no ticket {ticket_id!r} that you may see")
            history = (await session.execute(select(TicketLog).where(TicketLog.ticket_id == ticket_id).order_by(TicketLog.log_id))).scalars().all()
        if not any(entry.action == "open" for entry in history):  # a row only if an older version wrote one
            history = [_opening(ticket), *history]
        return ticket, list(history)

    async def tickets(
        self,
        actor: domain.Actor,
        *,
        stage: str | None = None,
        owner: str | None = None,
        kind: str | None = None,
        department: str | None = None,
        overdue: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Ticket]:
        now = self.clock.now()
        query = select(Ticket)
        if stage:
            if stage not in domain.STAGES and stage != "open":
                raise Invalid(f"stage {stage!r} is not one of {', '.join(domain.STAGES)} or open")
            query = query.where(Ticket.stage != "closed") if stage == "open" else query.where(Ticket.stage == stage)
        if owner:
            query = query.where(Ticket.owner == (actor.sub if owner == "me" else owner))
        if kind:
            query = query.where(Ticket.kind == kind)
        if department:
            query = query.where(Ticket.department == department)
        late = _overdue_clause(now)
        if overdue is True:
            query = query.where(late)
        elif overdue is False:
            query = query.where(~late)
        query = query.where(*_visible(actor))
        query = query.order_by(Ticket.opened_at.desc(), Ticket.ticket_id).limit(limit).offset(offset)
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars().all())

    def overdue_now(self, ticket: Ticket) -> str | None:
        return domain.overdue(ticket.stage, ticket.respond_by, ticket.resolve_by, self.clock.now())

    # -- escalation -----------------------------------------------------------------------

    async def escalate_overdue(self) -> int:
        """The periodic job: every ticket past a deadline goes one level up its owner's
        supervisor chain. The unique (ticket, opening, level) row decides which replica does it."""
        now = self.clock.now()
        config = await self.config()
        repeat = timedelta(minutes=self.settings.escalation_repeat_minutes)
        async with self.runtime.db.session() as session:
            due = (
                await session.execute(
                    select(Ticket.ticket_id)
                    .where(Ticket.stage.in_(domain.ACTIVE_STAGES), Ticket.next_check_at <= now)
                    .order_by(Ticket.next_check_at)
                    .limit(self.settings.escalation_batch)
                )
            ).scalars().all()
        escalated = 0
        for ticket_id in due:
            async with self.uow() as uow:
                # Locked: an acknowledgement or reassignment committing meanwhile is seen, not overwritten.
                ticket = await self._for_update(uow, ticket_id)
                if ticket.next_check_at is None or ticket.next_check_at > now:
                    continue  # another replica or a person acted on it since our list was read
                decision = domain.escalate(
                    stage=ticket.stage, owner=ticket.owner, priority=ticket.priority, level=ticket.escalation_level,
                    respond_by=ticket.respond_by, resolve_by=ticket.resolve_by, now=now, config=config,
                    repeat=repeat, max_level=self.settings.escalation_max_level,
                )  # fmt: skip
                if decision is None:  # acknowledged meanwhile, or at the top: look again at the next deadline
                    nxt = domain.next_check(ticket.stage, ticket.respond_by, ticket.resolve_by)
                    ticket.next_check_at = nxt if nxt and nxt > now else None
                    await uow.commit()
                    continue
                claimed = await insert_ignore(
                    uow.session,
                    EscalationRow,
                    {"ticket_id": ticket_id, "opening": ticket.reopen_count, "level": decision.level, "breach": decision.breach,
                     "from_owner": decision.previous_owner, "to_owner": decision.owner.person_id, "at": now,
                     "notify_attempts": 0},
                    ["ticket_id", "opening", "level"],
                )  # fmt: skip
                if not claimed:
                    continue  # another replica escalated it
                ticket.owner = decision.owner.person_id
                ticket.priority = decision.priority
                ticket.escalation_level = decision.level
                ticket.next_check_at = decision.next_check
                ticket.updated_at = now
                self._log(uow, ticket, "escalate", ticket.stage, "escalation", now,
                          note=f"missed {decision.breach}_by; level {decision.level} to {decision.owner.person_id}")
                uow.emit(
                    TicketEscalated(
                        **self._transition(ticket, now, "escalation"),
                        level=decision.level,
                        previous_owner=decision.previous_owner,
                        priority=decision.priority,
                    )
                )
                self._share(uow, ticket, now)
                await uow.commit()
                escalated += 1
                self._escalations.labels(str(decision.level)).inc()
        if escalated:
            log.info("escalated %d overdue tickets", escalated)
        await self.send_escalation_notices()
        return escalated

    async def send_escalation_notices(self) -> dict[str, int]:
        """Notify each escalation's new owner through the webhook; failures are retried on
        the next run, and the idempotency key lets the gateway drop a repeat."""
        config = await self.config()
        async with self.runtime.db.session() as session:
            pending = (
                await session.execute(
                    select(EscalationRow, Ticket)
                    .join(Ticket, Ticket.ticket_id == EscalationRow.ticket_id)
                    .where(EscalationRow.notified_at.is_(None), EscalationRow.notify_attempts < self.settings.notify_max_attempts)
                    .order_by(EscalationRow.escalation_id)
                    .limit(self.settings.escalation_batch)
                )
            ).all()
        sent = failed = 0
        for escalation, ticket in pending:
            person = config.people.get(escalation.to_owner)
            local_deadline = (ticket.respond_by if escalation.breach == "respond" else ticket.resolve_by).astimezone(self.tz)
            title = ticket.title
            if person and ticket.kind in domain.HEALTH_KINDS and person.department in domain.NEUTRAL_KIND:
                title = domain.without_health(ticket.model_dump(), person.department)["title"]  # as their view shows it
            notification = Notification(
                kind="ticket_escalated",
                channel="chat",
                to=Recipient(escalation.to_owner, person.name if person else None, person.phone if person else None),
                text=(
                    f"[升级 L{escalation.level}] {title} — missed its {escalation.breach} deadline "
                    f"{local_deadline:%m-%d %H:%M}; was {escalation.from_owner}, now yours. Ticket {ticket.ticket_id}."
                ),
                idempotency_key=f"ticket_escalated:{ticket.ticket_id}:{escalation.opening}:{escalation.level}",
                data={"ticket_id": ticket.ticket_id, "level": escalation.level, "breach": escalation.breach,
                      "priority": ticket.priority, "previous_owner": escalation.from_owner},
            )  # fmt: skip
            values: dict[str, Any]
            try:
                await self.notifier.notify(notification)
                values = {"notified_at": self.clock.now(), "notify_attempts": escalation.notify_attempts + 1}
                sent += 1
            except NotifyFailed as exc:
                values = {"notify_attempts": escalation.notify_attempts + 1, "last_error": str(exc)[:500]}
                failed += 1
            async with self.runtime.db.session() as session:
                await session.execute(
                    update(EscalationRow).where(EscalationRow.escalation_id == escalation.escalation_id).values(**values)
                )
                await session.commit()
        return {"sent": sent, "failed": failed}

    # -- the daily meeting --------------------------------------------------------------

    async def agenda(self, day: date) -> dict[str, Any]:
        """每日例会: overdue first, then what is new since the last meeting, then open tickets
        by department and owner, and the day's figures. "New" is from the meeting before the
        day's (COMMAND_MEETING_TIME the day before) to the day's meeting, or to now for today."""
        now = self.clock.now()
        since, meeting = domain.meeting_window(day, self.settings.meeting_time, self.tz)
        config = await self.config()
        async with self.runtime.db.session() as session:
            overdue = (await session.execute(select(Ticket).where(_overdue_clause(now)))).scalars().all()
            new = (
                await session.execute(
                    select(Ticket)
                    .where(Ticket.opened_at >= since, Ticket.opened_at < (now if day >= self.today() else meeting))
                    .order_by(Ticket.opened_at)
                )
            ).scalars().all()
            open_tickets = (
                await session.execute(select(Ticket).where(Ticket.stage != "closed").order_by(Ticket.department, Ticket.owner, Ticket.resolve_by))
            ).scalars().all()
        figures = await self.figures(day)
        overdue = sorted(overdue, key=lambda t: (-t.escalation_level, -PRIORITY_ORDER[t.priority], t.resolve_by))
        by_department: dict[str, dict[str, list[dict]]] = {}
        for t in open_tickets:
            by_department.setdefault(t.department, {}).setdefault(t.owner, []).append(self._brief(t, config, now))
        return {
            "date": day,
            "meeting_at": meeting,
            "new_since": since,
            "as_of": now,
            "overdue": [self._brief(t, config, now) for t in overdue],
            "new": [self._brief(t, config, now) for t in new],
            "open_by_department": [
                {
                    "department": d,
                    "department_name": config.departments[d].name if d in config.departments else d,
                    "owners": [
                        {"owner": o, "owner_name": _name(config, o), "tickets": items}
                        for o, items in sorted(owners.items())
                    ],
                }
                for d, owners in sorted(by_department.items())
            ],
            "figures": figures,
        }

    def _brief(self, t: Ticket, config: domain.Config, now: datetime) -> dict[str, Any]:
        return {
            "ticket_id": t.ticket_id,
            "kind": t.kind,
            "title": t.title,
            "stage": t.stage,
            "priority": t.priority,
            "department": t.department,
            "owner": t.owner,
            "owner_name": _name(config, t.owner),
            "respond_by": t.respond_by,
            "resolve_by": t.resolve_by,
            "overdue": domain.overdue(t.stage, t.respond_by, t.resolve_by, now),
            "escalation_level": t.escalation_level,
            "opened_at": t.opened_at,
            "grid_id": t.grid_id,
            "building_id": t.building_id,
        }

    async def figures(self, day: date) -> dict[str, Any]:
        """The day's figures, from what the command center has consumed and recorded."""
        start, end = day_bounds(day, self.tz)
        now = self.clock.now()
        async with self.runtime.db.session() as session:
            registered = await session.scalar(select(func.count()).select_from(KnownResident).where(KnownResident.registered_at < end)) or 0
            facts = dict(
                (await session.execute(
                    select(CheckinFact.kind, func.count()).where(CheckinFact.date == day).group_by(CheckinFact.kind)
                )).all()
            )  # fmt: skip
            followups = (
                await session.execute(
                    select(Ticket.stage, Ticket.resolved_at, Ticket.closed_at)
                    .where(Ticket.kind == "followup", Ticket.opened_at >= start, Ticket.opened_at < end)
                )
            ).all()
            responded = (
                await session.execute(
                    select(TicketLog.at, Ticket.opened_at)
                    .join(Ticket, Ticket.ticket_id == TicketLog.ticket_id)
                    .where(TicketLog.action == "acknowledge", TicketLog.at >= start, TicketLog.at < end)
                )
            ).all()
            resolved = (
                await session.execute(
                    select(TicketLog.at, Ticket.opened_at)
                    .join(Ticket, Ticket.ticket_id == TicketLog.ticket_id)
                    .where(TicketLog.action == "resolve", TicketLog.at >= start, TicketLog.at < end)
                )
            ).all()
            ratings = (
                await session.execute(
                    select(TicketLog.satisfaction).where(
                        TicketLog.action == "feedback", TicketLog.at >= start, TicketLog.at < end
                    )
                )
            ).scalars().all()
            stages = dict((await session.execute(select(Ticket.stage, func.count()).group_by(Ticket.stage))).all())
            overdue = await session.scalar(select(func.count()).select_from(Ticket).where(_overdue_clause(now))) or 0
            escalations = await session.scalar(
                select(func.count()).select_from(EscalationRow).where(EscalationRow.at >= start, EscalationRow.at < end)
            ) or 0
        checked_in, missed = facts.get("checked_in", 0), facts.get("missed", 0)
        expected = max(registered, checked_in + missed)
        followups_done = sum(1 for stage, *_ in followups if stage in ("resolved", "closed"))
        return {
            "date": day,
            "checkin": {
                "expected": expected,
                "checked_in": checked_in,
                "missed": missed,
                "completion_rate": domain.rate(checked_in, expected),
            },
            "followups": {"opened": len(followups), "resolved": followups_done, "resolution_rate": domain.rate(followups_done, len(followups))},
            "median_minutes_to_respond": domain.median_minutes(at - opened for at, opened in responded),
            "median_minutes_to_resolve": domain.median_minutes(at - opened for at, opened in resolved),
            "satisfaction": {
                "responses": len(ratings),
                "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
                "dissatisfied": sum(1 for r in ratings if r < domain.SATISFIED_FROM),
            },
            "open_by_stage": {s: stages.get(s, 0) for s in domain.STAGES if s != "closed"},
            "closed": stages.get("closed", 0),
            "overdue": overdue,
            "escalations": escalations,
        }

    # -- the heat map -------------------------------------------------------------------

    async def heatmap(self, since: datetime, kinds: Sequence[str] | None, resolution: int | None) -> dict[str, Any]:
        resolution = self.settings.h3_resolution if resolution is None else resolution
        if not 0 <= resolution <= self.settings.h3_resolution:
            raise Invalid(f"resolution must be 0–{self.settings.h3_resolution} (cells are recorded at {self.settings.h3_resolution})")
        query = select(Signal.h3_cell, Signal.kind, func.count()).where(Signal.at >= since).group_by(Signal.h3_cell, Signal.kind)
        if kinds:
            query = query.where(Signal.kind.in_(kinds))
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).all()
        cells: dict[str, Tally] = {}
        for cell, kind, count in rows:
            if resolution != self.settings.h3_resolution:
                cell = h3.cell_to_parent(cell, resolution)
            cells.setdefault(cell, Tally())[kind] += count
        features = []
        for cell, counts in sorted(cells.items(), key=lambda kv: -sum(kv[1].values())):
            boundary = [[lng, lat] for lat, lng in h3.cell_to_boundary(cell)]
            lat, lng = h3.cell_to_latlng(cell)
            features.append(
                {
                    "type": "Feature",
                    "id": cell,
                    "geometry": {"type": "Polygon", "coordinates": [boundary + boundary[:1]]},
                    "properties": {"h3": cell, "resolution": resolution, "count": sum(counts.values()),
                                   "counts": dict(counts), "center": [lng, lat]},
                }
            )  # fmt: skip
        return {"type": "FeatureCollection", "since": since.isoformat(), "kinds": list(kinds or []), "features": features}


# -- helpers ------------------------------------------------------------------------------


def _overdue_clause(now: datetime):
    return or_(
        and_(Ticket.stage.in_(domain.AWAITING_RESPONSE), Ticket.respond_by < now),
        and_(Ticket.stage.in_(domain.ACTIVE_STAGES), Ticket.resolve_by < now),
    )


def _visible(actor: domain.Actor) -> list:
    """The SQL form of domain.can_see, so lists are filtered in the database."""
    if actor.role in domain.STAFF_ROLES:
        return []
    mine = Ticket.owner == actor.sub
    if actor.role == "resident":
        return [or_(Ticket.resident_id == actor.sub, and_(Ticket.resident_id.is_(None), Ticket.reported_by == actor.sub))]
    if actor.role == "partner":
        return [or_(mine, Ticket.department == (actor.department or "\x00"))]
    if actor.role == "grid_worker":
        return [or_(mine, Ticket.grid_id.in_(actor.grid_ids or ["\x00"]))]
    if actor.role == "building_lead":
        return [or_(mine, Ticket.building_id.in_(actor.building_ids or ["\x00"]))]
    if actor.role in domain.ROLE_DEPARTMENT:
        return [or_(mine, Ticket.department == domain.ROLE_DEPARTMENT[actor.role])]
    return [mine]


def _scope(ticket: Ticket) -> domain.TicketScope:
    return domain.TicketScope(
        owner=ticket.owner,
        department=ticket.department,
        grid_id=ticket.grid_id,
        building_id=ticket.building_id,
        resident_id=ticket.resident_id,
        reported_by=ticket.reported_by,
    )


def _opening(ticket: Ticket) -> TicketLog:
    """The history's first entry, told by the ticket: opened by whom, when, with which owner.
    Nothing changes these columns after the opening (a ticket's source ids keep only the
    latest MAX_SOURCE_IDS, so the first event's id is known while the list is whole)."""
    first_event = ticket.source_event_ids[0] if ticket.source_event_ids and ticket.event_count <= MAX_SOURCE_IDS else None
    return TicketLog(
        ticket_id=ticket.ticket_id, action="open", from_stage=None, to_stage="discovered",
        by=ticket.opened_by or ticket.reported_by or "unknown", at=ticket.opened_at,
        note=(ticket.description or None) and ticket.description[:2000], owner=ticket.opened_owner or ticket.owner,
        satisfaction=None, event_id=first_event,
    )  # fmt: skip


def _source_name(envelope: ce.CloudEvent) -> str:
    return envelope.source.rsplit("/", 1)[-1] or envelope.source


def _name(config: domain.Config, person_id: str) -> str:
    person = config.people.get(person_id)
    return person.name if person else person_id


def _rule(row: RuleRow) -> domain.Rule:
    return defaults.rule(
        {
            "trigger": row.trigger, "kind": row.kind, "department": row.department, "owner_by": row.owner_by,
            "priority": row.priority, "title": row.title, "action": row.action, "raise_priority": row.raise_priority,
            "also_share": row.also_share, "enabled": row.enabled,
        }
    )  # fmt: skip


def _rule_row(rule: domain.Rule, by: str, now: datetime) -> RuleRow:
    return RuleRow(
        trigger=rule.trigger, kind=rule.kind, department=rule.department, owner_by=rule.owner_by,
        priority=rule.priority, title=rule.title, action=rule.action,
        raise_priority=[
            {k: v for k, v in {"field": r.field, "priority": r.priority, "at_least": r.at_least,
                               "any_of": list(r.any_of) or None}.items() if v is not None}
            for r in rule.raise_priority
        ],
        also_share=dict(rule.also_share), enabled=rule.enabled, updated_by=by, updated_at=now,
    )  # fmt: skip


def _sla(row: SlaRow) -> domain.Sla:
    return domain.Sla(row.kind, row.priority, row.respond_minutes, row.resolve_minutes, row.resolve_same_day)


def _sla_row(sla: domain.Sla) -> SlaRow:
    return SlaRow(kind=sla.kind, priority=sla.priority, respond_minutes=sla.respond_minutes,
                  resolve_minutes=sla.resolve_minutes, resolve_same_day=sla.resolve_same_day)  # fmt: skip


def _person(row: PersonRow) -> domain.Person:
    return domain.Person(
        person_id=row.person_id, name=row.name, role=row.role, department=row.department, phone=row.phone,
        supervisor_id=row.supervisor_id, grid_ids=tuple(row.grid_ids), building_ids=tuple(row.building_ids),
        active=row.active,
    )  # fmt: skip


def _person_row(person: domain.Person) -> PersonRow:
    return PersonRow(
        person_id=person.person_id, name=person.name, phone=person.phone, role=person.role,
        department=person.department, supervisor_id=person.supervisor_id, grid_ids=list(person.grid_ids),
        building_ids=list(person.building_ids), active=person.active,
    )  # fmt: skip


def _department(row: DepartmentRow) -> domain.Department:
    return domain.Department(row.department_id, row.name, row.partner, row.default_owner)


def _department_row(d: domain.Department) -> DepartmentRow:
    return DepartmentRow(department_id=d.department_id, name=d.name, partner=d.partner, default_owner=d.default_owner)
