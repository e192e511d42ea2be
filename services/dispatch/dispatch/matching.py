"""Matching volunteers to requests: the volunteers, the choice of one for a request, the jobs
that assign what waits and reassign what is overdue. Every dispatch use case stands on this.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy import func, select

from common.db import insert_ignore
from common.errors import Conflict, Invalid, NotFound
from common.events.dispatch import RequestAssigned, RequestOverdue
from common.outbox import UnitOfWork
from common.runtime import Runtime
from dispatch import domain
from dispatch.distances import distance_matrix_for
from dispatch.models import KnownResident, OverdueNotice, RequestHistory, ServiceRequest, Volunteer
from dispatch.settings import DispatchSettings


@dataclass(frozen=True)
class VolunteerDraft:
    name: str
    group: str
    lat: float
    lon: float
    capacity: int
    phone: str
    skills: tuple[str, ...] = ()
    availability: tuple[domain.Availability, ...] = ()
    volunteer_id: str | None = None


class Matching:
    """The base of the dispatch use cases: the context, volunteers, and who gets a request."""

    def __init__(self, runtime: Runtime, settings: DispatchSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz
        self.distance = distance_matrix_for(settings.osrm_url, settings.osrm_profile, settings.osrm_timeout_s)

    @property
    def clock(self):
        return self.runtime.clock

    def _history(self, uow: UnitOfWork, request: ServiceRequest, by: str, note: str | None = None) -> None:
        request.updated_at = self.clock.now()
        uow.session.add(
            RequestHistory(request_id=request.request_id, at=self.clock.now(), status=request.status, by=by, note=note)
        )

    async def _resident(self, uow: UnitOfWork, resident_id: str) -> KnownResident:
        resident = await uow.session.get(KnownResident, resident_id)
        if resident is None:
            raise NotFound(f"unknown resident {resident_id!r}: dispatch learns residents when check-in registers them")
        return resident

    async def _get(self, uow: UnitOfWork, request_id: str) -> ServiceRequest:
        request = await uow.get_for_update(ServiceRequest, request_id)
        if request is None:
            raise NotFound(f"no request {request_id!r}")
        return request

    async def register_volunteer(self, draft: VolunteerDraft) -> Volunteer:
        """Its own transaction, committed before the volunteer is offered what waits."""
        domain.check_group(draft.group)
        domain.check_coordinates(draft.lat, draft.lon)
        if draft.capacity < 1:
            raise Invalid(f"capacity {draft.capacity} must be at least 1 request per run")
        availability = domain.check_availability(draft.availability)
        async with self.runtime.work() as uow:
            volunteer_id = draft.volunteer_id or "V-" + uuid.uuid4().hex[:12]
            if await uow.session.get(Volunteer, volunteer_id) is not None:
                raise Conflict(f"volunteer {volunteer_id} already exists", volunteer_id=volunteer_id)
            volunteer = Volunteer(
                volunteer_id=volunteer_id,
                name=draft.name,
                group=draft.group,
                skills=list(draft.skills),
                lat=draft.lat,
                lon=draft.lon,
                capacity=draft.capacity,
                phone=draft.phone,
                availability=[availability_json(a) for a in availability],
                created_at=self.clock.now(),
            )
            uow.session.add(volunteer)
        # Someone new may take what was waiting for a volunteer.
        await self.assign_pending()
        return volunteer

    async def volunteer(self, volunteer_id: str) -> Volunteer:
        async with self.runtime.db.session() as session:
            volunteer = await session.get(Volunteer, volunteer_id)
        if volunteer is None:
            raise NotFound(f"no volunteer {volunteer_id!r}")
        return volunteer

    async def volunteer_names(self, volunteer_ids: set[str]) -> dict[str, str]:
        """Who will come, by name: what a resident and their grid worker are told."""
        if not volunteer_ids:
            return {}
        async with self.runtime.db.session() as session:
            rows = await session.execute(
                select(Volunteer.volunteer_id, Volunteer.name).where(Volunteer.volunteer_id.in_(volunteer_ids))
            )
        return dict(rows.all())

    async def volunteers(self) -> list[dict]:
        async with self.runtime.db.session() as session:
            volunteers = (await session.execute(select(Volunteer).order_by(Volunteer.volunteer_id))).scalars().all()
            loads = await self._open_loads(session)
        return [{**v.model_dump(), "open_requests": loads.get(v.volunteer_id, 0)} for v in volunteers]

    async def _open_loads(self, session) -> dict[str, int]:
        rows = await session.execute(
            select(ServiceRequest.volunteer_id, func.count())
            .where(ServiceRequest.status.in_(domain.OPEN), ServiceRequest.volunteer_id.is_not(None))
            .group_by(ServiceRequest.volunteer_id)
        )
        return dict(rows.all())

    async def _candidates(self, session) -> list[domain.Candidate]:
        volunteers = (await session.execute(select(Volunteer).where(Volunteer.active.is_(True)))).scalars().all()
        loads = await self._open_loads(session)
        since = self.clock.now() - timedelta(days=1)
        recent = dict(
            (
                await session.execute(
                    select(RequestHistory.by, func.count())
                    .where(RequestHistory.status == "assigned", RequestHistory.at >= since)
                    .group_by(RequestHistory.by)
                )
            ).all()
        )
        return [
            domain.Candidate(
                volunteer_id=v.volunteer_id,
                group=v.group,
                skills=tuple(v.skills),
                lat=v.lat,
                lon=v.lon,
                capacity=v.capacity,
                open_load=loads.get(v.volunteer_id, 0),
                recent_load=recent.get(v.volunteer_id, 0),
                availability=tuple(availability_from_json(a) for a in v.availability),
            )
            for v in volunteers
        ]

    def _need(self, request: ServiceRequest) -> domain.Need:
        now = self.clock.now()
        start = max(request.window_start or now, now)
        end = max(request.due_by, start + timedelta(minutes=30))
        return domain.Need(request.category, request.lat, request.lon, start, end)

    async def _assign(self, uow: UnitOfWork, request: ServiceRequest, exclude: Sequence[str] = ()) -> bool:
        await uow.session.flush()
        chosen = domain.match(self._need(request), await self._candidates(uow.session), self.tz, exclude)
        if chosen is None:
            if request.status != "pending" or request.volunteer_id:
                request.status, request.volunteer_id = "pending", None
                self._history(uow, request, "dispatch", "no volunteer free: waiting")
            return False
        previous = request.volunteer_id
        request.volunteer_id = chosen.volunteer_id
        request.status = "assigned"
        request.assignment_no += 1
        request.run_id = None
        uow.session.add(
            RequestHistory(
                request_id=request.request_id,
                at=self.clock.now(),
                status="assigned",
                by=chosen.volunteer_id,
                note="assigned",
            )
        )
        request.updated_at = self.clock.now()
        uow.emit(
            RequestAssigned(
                request_id=request.request_id,
                volunteer_id=chosen.volunteer_id,
                due_by=request.due_by,
                previous_volunteer_id=previous,
                category=request.category,
            )
        )
        await uow.session.flush()
        return True

    async def assign_pending(self) -> int:
        """The job: give waiting requests to volunteers who became free or available."""
        async with self.runtime.db.session() as session:
            ids = (
                (
                    await session.execute(
                        select(ServiceRequest.request_id)
                        .where(ServiceRequest.status == "pending")
                        .order_by(ServiceRequest.due_by)
                        .limit(500)
                    )
                )
                .scalars()
                .all()
            )
        assigned = 0
        for request_id in ids:
            async with self.runtime.work() as uow:
                request = await uow.get_for_update(ServiceRequest, request_id)
                if request is None or request.status != "pending":
                    continue
                if await self._assign(uow, request):
                    assigned += 1
        return assigned

    async def sweep_overdue(self) -> int:
        """Requests past due: `RequestOverdue` once per assignment, then another volunteer
        (who gets two hours: the request is now urgent)."""
        now = self.clock.now()
        async with self.runtime.db.session() as session:
            ids = (
                (
                    await session.execute(
                        select(ServiceRequest.request_id).where(
                            ServiceRequest.status.in_(domain.OPEN), ServiceRequest.due_by < now
                        )
                    )
                )
                .scalars()
                .all()
            )
        noticed = 0
        for request_id in ids:
            async with self.runtime.work() as uow:
                request = await uow.session.get(ServiceRequest, request_id)
                if request is None or request.status not in domain.OPEN or request.due_by >= now:
                    continue
                claimed = await insert_ignore(
                    uow.session,
                    OverdueNotice,
                    {
                        "request_id": request_id,
                        "assignment_no": request.assignment_no,
                        "volunteer_id": request.volunteer_id,
                        "noticed_at": now,
                    },
                    ["request_id", "assignment_no"],
                )
                if not claimed:
                    continue
                late = request.volunteer_id
                uow.emit(
                    RequestOverdue(
                        request_id=request_id, due_by=request.due_by, volunteer_id=late, category=request.category
                    )
                )
                self._history(uow, request, "dispatch", f"overdue (was due {request.due_by.isoformat()}); reassigning")
                request.priority = "urgent"
                request.due_by = now + timedelta(hours=domain.SLA_HOURS["urgent"])
                await self._assign(uow, request, exclude=[late] if late else [])
                noticed += 1
        return noticed


def availability_json(a: domain.Availability) -> dict:
    return {"start": a.start.strftime("%H:%M"), "end": a.end.strftime("%H:%M"), "days": list(a.days)}


def availability_from_json(raw: dict) -> domain.Availability:
    return domain.Availability(
        time.fromisoformat(raw["start"]), time.fromisoformat(raw["end"]), tuple(raw.get("days") or ())
    )
