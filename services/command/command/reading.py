"""What people read: tickets and their history, the daily meeting's agenda and figures,
and the heat map. Lists are filtered in the database by who may see what."""

from __future__ import annotations

import hmac
from collections import Counter as Tally
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import h3
from sqlalchemy import String, and_, cast, func, or_, select

from command import changes, domain
from command.directory import Directory
from command.models import CheckinFact, EscalationRow, KnownBuilding, KnownResident, Signal, Ticket, TicketLog
from command.settings import CommandSettings
from common.clock import day_bounds, local_date
from common.errors import Forbidden, Invalid, NotFound
from common.runtime import Runtime

PRIORITY_ORDER = {p: i for i, p in enumerate(domain.PRIORITIES)}


class Reading:
    def __init__(self, runtime: Runtime, settings: CommandSettings, directory: Directory) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz
        self.directory = directory

    @property
    def clock(self):
        return self.runtime.clock

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    async def ticket(self, actor: domain.Actor, ticket_id: str) -> tuple[Ticket, list[TicketLog]]:
        async with self.runtime.db.session() as session:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None or not domain.can_see(actor, changes.scope(ticket)):
                raise NotFound("no such ticket that you may see")
            history = (
                (
                    await session.execute(
                        select(TicketLog).where(TicketLog.ticket_id == ticket_id).order_by(TicketLog.log_id)
                    )
                )
                .scalars()
                .all()
            )
        if not any(entry.action == "open" for entry in history):  # a row only if an older version wrote one
            history = [opening(ticket), *history]
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
        masked = actor.role == "building_lead" or domain.withholds_health(actor)
        if masked and (
            kind or (actor.role == "building_lead" and (department or owner not in (None, "me", actor.sub)))
        ):
            # What they are shown of a sensitive ticket hides these: a filter on them would not.
            raise Forbidden(f"role {actor.role!r} may not filter tickets by kind, department or owner")
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

    async def shared_with(self, department: str, *, finished: bool = False, limit: int = 200) -> list[Ticket]:
        """The tickets partner.<department>.v1 tells of (the department's own and those shared
        with it): the open ones, most urgent first, or with `finished` the resolved and closed
        ones, latest first."""
        stages = ("resolved", "closed") if finished else tuple(domain.ACTIVE_STAGES)
        query = (
            select(Ticket)
            # a first cut in the database; `shares` is JSON on every dialect, the key is checked below
            .where(Ticket.stage.in_(stages), cast(Ticket.shares, String).like(f'%"{department}":%'))
            .order_by(Ticket.updated_at.desc(), Ticket.ticket_id)
            .limit(limit)
        )
        async with self.runtime.db.session() as session:
            rows = [t for t in (await session.execute(query)).scalars().all() if department in (t.shares or {})]
        if not finished:
            rows.sort(key=lambda t: (-PRIORITY_ORDER[t.priority], t.respond_by, t.ticket_id))
        return rows

    async def by_reference(self, department: str, reference: str) -> str | None:
        """The id of the ticket shared with `department` under `reference` (its topic's key)."""
        query = select(Ticket.ticket_id, Ticket.shares).where(cast(Ticket.shares, String).like(f'%"{department}":%'))
        async with self.runtime.db.session() as session:
            for ticket_id, shares in (await session.execute(query)).all():
                if department in (shares or {}) and hmac.compare_digest(
                    domain.reference(self.settings.reference_key, department, ticket_id), reference
                ):
                    return ticket_id
        return None

    def overdue_now(self, ticket: Ticket) -> str | None:
        return domain.overdue(ticket.stage, ticket.respond_by, ticket.resolve_by, self.clock.now())

    # -- the daily meeting --------------------------------------------------------------

    async def agenda(self, day: date) -> dict[str, Any]:
        """每日例会: overdue first, then what is new since the last meeting, then open tickets
        by department and owner, and the day's figures. "New" is from the meeting before the
        day's (COMMAND_MEETING_TIME the day before) to the day's meeting, or to now for today."""
        now = self.clock.now()
        since, meeting = domain.meeting_window(day, self.settings.meeting_time, self.tz)
        config = await self.directory.config()
        async with self.runtime.db.session() as session:
            overdue = (await session.execute(select(Ticket).where(_overdue_clause(now)))).scalars().all()
            new = (
                (
                    await session.execute(
                        select(Ticket)
                        .where(Ticket.opened_at >= since, Ticket.opened_at < (now if day >= self.today() else meeting))
                        .order_by(Ticket.opened_at)
                    )
                )
                .scalars()
                .all()
            )
            open_tickets = (
                (
                    await session.execute(
                        select(Ticket)
                        .where(Ticket.stage != "closed")
                        .order_by(Ticket.department, Ticket.owner, Ticket.resolve_by)
                    )
                )
                .scalars()
                .all()
            )
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
        # The agenda is printed and pasted into group chats: a sensitive ticket shows by its
        # kind and place, whatever title an older rule gave it.
        sensitive = domain.sensitive(t.trigger, t.facts, t.description)
        return {
            "ticket_id": t.ticket_id,
            "kind": t.kind,
            "title": domain.public_title(t.kind, t.building_id, t.grid_id) if sensitive else t.title,
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
            registered = (
                await session.scalar(
                    select(func.count()).select_from(KnownResident).where(KnownResident.registered_at < end)
                )
                or 0
            )
            facts = dict(
                (await session.execute(
                    select(CheckinFact.kind, func.count()).where(CheckinFact.date == day).group_by(CheckinFact.kind)
                )).all()
            )  # fmt: skip
            followups = (
                await session.execute(
                    select(Ticket.stage, Ticket.facts).where(
                        Ticket.kind == "followup", Ticket.opened_at >= start, Ticket.opened_at < end
                    )
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
                (
                    await session.execute(
                        select(TicketLog.satisfaction).where(
                            TicketLog.action == "feedback", TicketLog.at >= start, TicketLog.at < end
                        )
                    )
                )
                .scalars()
                .all()
            )
            stages = dict((await session.execute(select(Ticket.stage, func.count()).group_by(Ticket.stage))).all())
            overdue = await session.scalar(select(func.count()).select_from(Ticket).where(_overdue_clause(now))) or 0
            escalations = (
                await session.scalar(
                    select(func.count())
                    .select_from(EscalationRow)
                    .where(EscalationRow.at >= start, EscalationRow.at < end)
                )
                or 0
            )
        checked_in, missed = facts.get("checked_in", 0), facts.get("missed", 0)
        expected = max(registered, checked_in + missed)
        followups_done = sum(1 for stage, _ in followups if stage in ("resolved", "closed"))
        # 重点人群: residents with a special-population tag (elderly, living alone, chronic, ...)
        key = [stage for stage, facts in followups if (facts or {}).get("tags")]
        key_done = sum(1 for stage in key if stage in ("resolved", "closed"))
        return {
            "date": day,
            "checkin": {
                "expected": expected,
                "checked_in": checked_in,
                "missed": missed,
                "completion_rate": domain.rate(checked_in, expected),
            },
            "followups": {
                "opened": len(followups),
                "resolved": followups_done,
                "resolution_rate": domain.rate(followups_done, len(followups)),
                "key_population": {
                    "opened": len(key),
                    "resolved": key_done,
                    "resolution_rate": domain.rate(key_done, len(key)),
                },
            },
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

    async def heatmap(
        self, since: datetime, kinds: Sequence[str] | None, resolution: int | None, actor: domain.Actor | None = None
    ) -> dict[str, Any]:
        """Counts per H3 cell since `since` (at most COMMAND_HEATMAP_MAX_DAYS back). A grid
        worker sees their grids' cells; health kinds go to command staff and grid workers only,
        and only in cells where at least COMMAND_HEATMAP_MIN_COUNT of them are."""
        resolution = self.settings.h3_resolution if resolution is None else resolution
        if not 0 <= resolution <= self.settings.h3_resolution:
            raise Invalid(
                f"resolution must be 0–{self.settings.h3_resolution} (cells are recorded at {self.settings.h3_resolution})"
            )
        earliest = self.clock.now() - timedelta(days=self.settings.heatmap_max_days)
        if since < earliest:
            raise Invalid(f"since may be at most {self.settings.heatmap_max_days} days ago (COMMAND_HEATMAP_MAX_DAYS)")
        health = health_kinds(await self.directory.config())
        staff = actor is None or actor.role in domain.STAFF_ROLES
        query = (
            select(Signal.h3_cell, Signal.kind, func.count())
            .where(Signal.at >= since)
            .group_by(Signal.h3_cell, Signal.kind)
        )
        if kinds:
            query = query.where(Signal.kind.in_(kinds))
        if not staff and actor.role != "grid_worker":
            query = query.where(Signal.kind.not_in(list(health)))
        async with self.runtime.db.session() as session:
            if not staff and actor.role == "grid_worker":
                mine = await _grid_cells(session, actor.grid_ids, self.settings.h3_resolution)
                query = query.where(self.runtime.db.any_of(Signal.h3_cell, mine) if mine else Signal.h3_cell.is_(None))
            rows = (await session.execute(query)).all()
        cells: dict[str, Tally] = {}
        for cell, kind, count in rows:
            if resolution != self.settings.h3_resolution:
                cell = h3.cell_to_parent(cell, resolution)
            cells.setdefault(cell, Tally())[kind] += count
        for counts in cells.values():  # a few fevers in a cell point at a household: not shown
            for kind in [k for k, n in counts.items() if k in health and n < self.settings.heatmap_min_count]:
                del counts[kind]
        cells = {cell: counts for cell, counts in cells.items() if counts}
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
        return {
            "type": "FeatureCollection",
            "since": since.isoformat(),
            "kinds": list(kinds or []),
            "features": features,
        }


def health_kinds(config: domain.Config) -> frozenset[str]:
    """Heat-map kinds that count health problems: fevers, and the kinds of health rules."""
    ruled = {r.kind for r in config.rules.values() if domain.health_trigger(r.trigger)}
    return frozenset({"fever", *domain.HEALTH_KINDS, *ruled})


async def _grid_cells(session, grid_ids: Sequence[str], resolution: int) -> list[str]:
    """The heat-map cells of a grid's buildings and residents, where the command center knows them."""
    if not grid_ids:
        return []
    places = [
        *(await session.execute(
            select(KnownBuilding.lat, KnownBuilding.lon).where(KnownBuilding.grid_id.in_(grid_ids), KnownBuilding.lat.is_not(None))
        )).all(),
        *(await session.execute(
            select(KnownResident.lat, KnownResident.lon).where(KnownResident.grid_id.in_(grid_ids), KnownResident.lat.is_not(None))
        )).all(),
    ]  # fmt: skip
    return sorted({h3.latlng_to_cell(lat, lon, resolution) for lat, lon in places if lon is not None})


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
        return [
            or_(Ticket.resident_id == actor.sub, and_(Ticket.resident_id.is_(None), Ticket.reported_by == actor.sub))
        ]
    if actor.role == "partner":
        return [or_(mine, Ticket.department == (actor.department or "\x00"))]
    if actor.role == "grid_worker":
        return [or_(mine, Ticket.grid_id.in_(actor.grid_ids or ["\x00"]))]
    if actor.role == "building_lead":
        return [or_(mine, Ticket.building_id.in_(actor.building_ids or ["\x00"]))]
    if actor.role in domain.ROLE_DEPARTMENT:
        return [or_(mine, Ticket.department == domain.ROLE_DEPARTMENT[actor.role])]
    return [mine]


def opening(ticket: Ticket) -> TicketLog:
    """The history's first entry, told by the ticket: opened by whom, when, with which owner.
    Nothing changes these columns after the opening (a ticket's source ids keep only the
    latest domain.MAX_SOURCE_IDS, so the first event's id is known while the list is whole)."""
    first_event = (
        ticket.source_event_ids[0] if ticket.source_event_ids and ticket.event_count <= domain.MAX_SOURCE_IDS else None
    )
    return TicketLog(
        ticket_id=ticket.ticket_id, action="open", from_stage=None, to_stage="discovered",
        by=ticket.opened_by or ticket.reported_by or "unknown", at=ticket.opened_at,
        note=(ticket.description or None) and ticket.description[:2000], owner=ticket.opened_owner or ticket.owner,
        satisfaction=None, event_id=first_event,
    )  # fmt: skip


def _name(config: domain.Config, person_id: str) -> str:
    person = config.people.get(person_id)
    return person.name if person else person_id
