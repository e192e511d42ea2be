"""Problems into tickets: every event that is a problem, and every report by hand, opens a
ticket or joins the open ticket of the same problem. What other services tell the command
center about residents, check-ins and requests is recorded here too."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import h3
from prometheus_client import Counter

from command import changes, domain
from command.directory import Directory
from command.models import Ticket
from command.settings import CommandSettings
from command.store import NewTicket, Store, Stores, TicketRow
from common import envelope as ce
from common.errors import Forbidden, Invalid, NotFound
from common.events.command import TicketUpdated
from common.metrics import LoopHistogram
from common.outbox import UnitOfWork
from common.runtime import Runtime


class Intake:
    def __init__(self, runtime: Runtime, settings: CommandSettings, directory: Directory, stores: Stores) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz
        self.directory = directory
        self.stores = stores
        self._opened = Counter(
            "firstline_command_tickets_opened_total", "Tickets opened, by kind", ["kind"], registry=runtime.registry
        )
        self._opened_by_kind: dict[str, Any] = {}  # the counter's children, looked up once per kind
        self._latency = LoopHistogram(  # observed per event: a sweep's thousands
            "firstline_command_event_to_ticket_seconds",
            "From an event's time to its ticket being opened or updated",
            (),
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=runtime.registry,
        ).labels()

    async def take_report(
        self, report: domain.Report, source: ce.CloudEvent | None = None, uow: UnitOfWork | None = None
    ) -> TicketRow | None:
        """The one use case for every problem, from an event or by hand: open a ticket, or
        update the open ticket of the same problem. None when no rule routes it."""
        config = await self.directory.config()
        if not config.rules:  # an empty rules table: retry (and dead-letter) rather than drop the event
            self.directory.forget_config()
            raise RuntimeError("no routing rules are configured")
        async with self.runtime.work(uow) as uow:
            store = self.stores.of(uow)
            report = await self._locate(store, report)
            routing = domain.route(report, config)
            if routing is None:
                return None
            now = self.runtime.clock.now()
            by = _source_name(source) if source else (report.reported_by or "unknown")
            event_ids = [source.id] if source else []
            ticket = await store.open_ticket(routing.open_key)
            if ticket is None:
                ticket = await self._open(uow, store, report, routing, config, now, by, event_ids)
            else:
                self._update(uow, store, ticket, report, routing, config, now, by, event_ids)
            if report.lat is not None and report.lon is not None:
                kind = domain.SIGNAL_KINDS.get(report.trigger.removeprefix("event:"), routing.kind)
                store.add_signal(self._signal(kind, report.lat, report.lon, now, ticket.ticket_id))
        if source:
            self._latency.observe(max((now - source.time).total_seconds(), 0.0))
        return ticket

    async def _open(self, uow, store: Store, report, routing, config, now, by, event_ids) -> NewTicket:
        due = domain.deadlines(config.sla_for(routing.kind, routing.priority), now, self.tz)
        if report.resolve_by is not None:  # named by command staff: the SLA's respond_by, if sooner
            due = domain.Deadlines(min(due.respond_by, report.resolve_by), report.resolve_by)
        ticket_id = "T-" + os.urandom(6).hex()  # what secrets.token_hex(6) does, without its layers
        row, event = domain.opened(ticket_id, report, routing, due, now, by, event_ids)
        ticket = await store.add_ticket(row)  # its history's "open" entry is told by the ticket (reading.opening)
        uow.emit(event, at=now)
        changes.share(uow, ticket, now, self.settings.reference_key)
        opened = self._opened_by_kind.get(ticket.kind)
        if opened is None:
            opened = self._opened_by_kind[ticket.kind] = self._opened.labels(ticket.kind)
        opened.inc()
        return ticket

    def _update(self, uow, store: Store, ticket: TicketRow, report, routing, config, now, by, event_ids) -> None:
        """A new event about an open problem joins its ticket. On a resolved ticket it says
        the problem is back: the ticket is reopened with fresh deadlines."""
        stage = domain.transition(ticket.stage, "update")
        previous_stage = ticket.stage
        ticket.event_count += 1
        ticket.source_event_ids = (ticket.source_event_ids + event_ids)[-domain.MAX_SOURCE_IDS :]
        ticket.facts = {**ticket.facts, **report.facts}
        ticket.title = routing.title
        ticket.action = routing.action or ticket.action
        ticket.updated_at = now
        priority = domain.higher(ticket.priority, routing.priority)
        raised = priority != ticket.priority
        ticket.priority = priority
        event_id = event_ids[0] if event_ids else None
        if stage == "reopened":
            change = domain.reopen(changes.state(ticket), by, now, report.trigger, event_id, config, self.tz)
            changes.apply(uow, store, ticket, change, self.settings.reference_key)
            return
        if raised:
            fresh = domain.deadlines(config.sla_for(ticket.kind, priority), now, self.tz)
            due = domain.tighter(domain.Deadlines(ticket.respond_by, ticket.resolve_by), fresh)
            ticket.respond_by, ticket.resolve_by = due.respond_by, due.resolve_by
            ticket.next_check_at = domain.next_check(ticket.stage, due.respond_by, due.resolve_by)
        line = domain.LogLine("update", previous_stage, ticket.stage, by, now, ticket.owner, event_id=event_id)
        store.add_log(ticket.ticket_id, line)
        uow.emit(
            TicketUpdated(
                ticket_id=ticket.ticket_id, stage=ticket.stage, owner=ticket.owner, at=now, by=by,
                source_event_ids=event_ids, priority=ticket.priority if raised else None,
            ),
            at=now,
        )  # fmt: skip
        if raised:
            changes.share(uow, ticket, now, self.settings.reference_key)

    async def _locate(self, store: Store, report: domain.Report) -> domain.Report:
        """Fill in the grid, building and coordinates the command center has learned."""
        if report.lat is not None and report.lon is not None and report.grid_id and report.building_id:
            return report
        grid_id, building_id, lat, lon = report.grid_id, report.building_id, report.lat, report.lon
        if report.resident_id and not (grid_id and building_id):
            resident = await store.resident(report.resident_id)
            if resident:
                grid_id, building_id = grid_id or resident.grid_id, building_id or resident.building_id
                if lat is None and resident.lat is not None:
                    lat, lon = resident.lat, resident.lon
        if building_id and (lat is None or not grid_id):
            place = await store.place(building_id)
            if place:
                grid_id = grid_id or place[0]
                if lat is None and place[1] is not None:
                    lat, lon = place[1], place[2]
        if (grid_id, building_id, lat, lon) == (report.grid_id, report.building_id, report.lat, report.lon):
            return report  # nothing learned: spare the copy
        return replace(report, grid_id=grid_id, building_id=building_id, lat=lat, lon=lon)

    def _signal(self, kind: str, lat: float, lon: float, at: datetime, ticket_id: str | None) -> dict[str, Any]:
        cell = h3.latlng_to_cell(lat, lon, self.settings.h3_resolution)
        return dict(kind=kind, h3_cell=cell, lat=lat, lon=lon, at=at, ticket_id=ticket_id)

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
        owner: str | None = None,
        resolve_by: datetime | None = None,
    ) -> Ticket:
        """POST /tickets: a problem reported by staff or a resident, routed by the same rules.
        Each report is its own problem (its subject is new). Command staff may name the owner
        and the deadline (a decision of the daily meeting)."""
        if actor.role not in domain.REPORTER_ROLES:
            raise Forbidden(f"role {actor.role!r} cannot report problems")
        if (owner or resolve_by) and actor.role not in ("command", "admin"):
            raise Forbidden("only command staff name a ticket's owner or deadline")
        if resolve_by is not None and resolve_by <= self.runtime.clock.now():
            raise Invalid("the deadline (resolve_by) must be in the future")
        if actor.role == "resident":
            if resident_id and resident_id != actor.sub:
                raise Invalid("residents report problems about themselves: leave resident_id out or use your own")
            resident_id = actor.sub
        domain.ensure_can_set_priority(actor, priority)
        if actor.role == "building_lead" and building_id is not None and building_id not in actor.building_ids:
            raise NotFound(f"no building {building_id!r} among those you may act for")
        if actor.role == "grid_worker" and grid_id is not None and grid_id not in actor.grid_ids:
            raise NotFound(f"no grid {grid_id!r} among those you may act for")
        config = await self.directory.config()
        trigger = f"category:{category}"
        if config.rule(trigger) is None:
            known = sorted(
                t.removeprefix("category:") for t, r in config.rules.items() if t.startswith("category:") and r.enabled
            )
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
            owner=owner,
            resolve_by=resolve_by,
        )
        async with self.runtime.work() as uow:
            if resident_id is not None:  # where they live is the register's word, not the body's
                known = await self.stores.of(uow).resident(resident_id)
                domain.ensure_can_report_about(
                    actor, resident_id, known and known.grid_id, known and known.building_id, known is not None
                )
                if known is not None:
                    report = replace(report, grid_id=known.grid_id, building_id=known.building_id, lat=known.lat,
                                     lon=known.lon)  # fmt: skip
                elif actor.role == "resident":
                    report = replace(report, grid_id=None, building_id=None, lat=None, lon=None)
            opened = await self.take_report(report, uow=uow)
            ticket = await uow.session.get(Ticket, opened.ticket_id)  # the row as routes show it
        return ticket

    # -- what other services tell us ----------------------------------------------------

    async def learn_resident(self, resident_id: str, grid_id: str, building_id: str, lat: float | None,
                             lon: float | None, at: datetime, uow: UnitOfWork | None = None) -> None:  # fmt: skip
        async with self.runtime.work(uow) as uow:
            await self.stores.of(uow).learn_resident(resident_id, grid_id, building_id, lat, lon, at)

    async def record_checkin_fact(self, resident_id: str, day: date, kind: str, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            await self.stores.of(uow).record_fact(resident_id, day, kind)

    async def record_signal(
        self, kind: str, resident_id: str | None, lat: float | None, lon: float | None, uow: UnitOfWork | None = None
    ) -> None:
        """A located problem that is not a ticket here (a request for help): the heat map only."""
        async with self.runtime.work(uow) as uow:
            store = self.stores.of(uow)
            report = await self._locate(
                store, domain.Report(trigger=kind, subject_id="", resident_id=resident_id, lat=lat, lon=lon)
            )
            if report.lat is not None and report.lon is not None:
                store.add_signal(self._signal(kind, report.lat, report.lon, self.runtime.clock.now(), None))


def _source_name(envelope: ce.CloudEvent) -> str:
    return envelope.source.rsplit("/", 1)[-1] or envelope.source
