"""Dispatch use cases: load, decide (domain, routing), save and stage events, in one transaction.

Routes (api.py), event handlers (handlers.py) and periodic jobs (jobs.py) all call these.
A use case called from a handler runs in the handler's unit of work (so the inbox record
and the effect commit together); called from a route it opens its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import case, func, or_, select, update

from common.db import insert_ignore
from common.errors import Conflict, Forbidden, Invalid, NotFound
from common.events.checkin import ResidentRegistered
from common.events.dispatch import (
    DeliveryFailed,
    DeliveryPlanned,
    DemandSurge,
    ItemLine,
    RequestAssigned,
    RequestCancelled,
    RequestFulfilled,
    RequestOverdue,
    RequestRaised,
)
from common.events.supplies import ReservationRejected, StockReserved, StockRestored
from common.events.timebank import HoursRedeemed
from common.outbox import UnitOfWork
from common.runtime import Runtime
from dispatch import domain, routing
from dispatch.distances import distance_matrix_for
from dispatch.models import (
    DeliveryRun,
    KnownResident,
    OverdueNotice,
    Recurrence,
    RequestHistory,
    ServiceRequest,
    Surge,
    Volunteer,
)
from dispatch.settings import DispatchSettings

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("0d6b2f4e-5c1a-4f7e-8b3d-9a2c1e4f6b8d")
PRIORITY_WEIGHT = {"low": 1, "normal": 2, "high": 4, "urgent": 8}
PLANNABLE = ("pending", "assigned")


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


@dataclass(frozen=True)
class PlanRequest:
    slot_start: datetime
    slot_end: datetime
    volunteer_ids: tuple[str, ...] = ()
    depot_id: str | None = None
    depot_lat: float | None = None
    depot_lon: float | None = None
    time_limit_s: float | None = None


@dataclass
class PlanResult:
    slot_start: datetime
    slot_end: datetime
    runs: list[DeliveryRun]
    considered: int
    unplanned: list[str]
    volunteers: int


class DispatchService:
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
        uow.session.add(RequestHistory(request_id=request.request_id, at=self.clock.now(), status=request.status, by=by, note=note))

    # -- residents (learnt from check-in) ----------------------------------------------------

    async def learn_resident(self, event: ResidentRegistered, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as w:
            resident = await w.session.get(KnownResident, event.resident_id)
            if resident is None:
                resident = KnownResident(resident_id=event.resident_id, learnt_at=self.clock.now(), community_id=event.community_id, grid_id=event.grid_id, building_id=event.building_id)
                w.session.add(resident)
            resident.community_id = event.community_id
            resident.grid_id = event.grid_id
            resident.building_id = event.building_id
            resident.tags = list(event.tags)
            for name in ("name", "phone", "unit", "room", "lat", "lon"):
                value = getattr(event, name)
                if value is not None:
                    setattr(resident, name, value)
            resident.learnt_at = self.clock.now()

    async def _resident(self, uow: UnitOfWork, resident_id: str) -> KnownResident:
        resident = await uow.session.get(KnownResident, resident_id)
        if resident is None:
            raise NotFound(f"unknown resident {resident_id!r}: dispatch learns residents when check-in registers them")
        return resident

    # -- volunteers ---------------------------------------------------------------------

    async def register_volunteer(self, draft: VolunteerDraft) -> Volunteer:
        domain.check_group(draft.group)
        domain.check_coordinates(draft.lat, draft.lon)
        if draft.capacity < 1:
            raise Invalid(f"capacity {draft.capacity} must be at least 1 request per run")
        availability = domain.check_availability(draft.availability)
        async with self.runtime.uow() as uow:
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
                availability=[_availability_json(a) for a in availability],
                created_at=self.clock.now(),
            )
            uow.session.add(volunteer)
            await uow.commit()
        # Someone new may take what was waiting for a volunteer.
        await self.assign_pending()
        return volunteer

    async def volunteer(self, volunteer_id: str) -> Volunteer:
        async with self.runtime.db.session() as session:
            volunteer = await session.get(Volunteer, volunteer_id)
        if volunteer is None:
            raise NotFound(f"no volunteer {volunteer_id!r}")
        return volunteer

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
                availability=tuple(_availability(a) for a in v.availability),
            )
            for v in volunteers
        ]

    # -- raising requests -----------------------------------------------------------------

    async def raise_request(
        self,
        actor: domain.Actor,
        resident_id: str,
        category: str,
        details: str | None,
        items: Sequence[ItemLine] = (),
        window: domain.Window | None = None,
    ) -> ServiceRequest:
        domain.check_category(category)
        now = self.clock.now()
        window = domain.check_window(window, now)
        async with self.runtime.uow() as uow:
            resident = await self._resident(uow, resident_id)
            source = domain.source_for(actor, resident_id, resident.grid_id, resident.building_id)
            request = await self._raise(
                uow, resident, category, details, items, window, source=source, raised_by=actor.sub,
                request_id="RQ-" + uuid.uuid4().hex[:16],
            )
            await uow.commit()
        return request

    async def _raise(
        self,
        uow: UnitOfWork,
        resident: KnownResident,
        category: str,
        details: str | None,
        items: Sequence[ItemLine],
        window: domain.Window | None,
        *,
        source: str,
        raised_by: str,
        request_id: str,
        priority: str | None = None,
        due: datetime | None = None,
        redemption_id: str | None = None,
        recurrence_id: str | None = None,
    ) -> ServiceRequest:
        now = self.clock.now()
        priority = priority or domain.priority_for(category, resident.tags)
        lines = _merge_lines(items)
        request = ServiceRequest(
            request_id=request_id,
            resident_id=resident.resident_id,
            category=category,
            details=details,
            items=[line.model_dump() for line in lines],
            priority=priority,
            due_by=due or domain.due_by(priority, now, window),
            window_start=window.start if window else None,
            window_end=window.end if window else None,
            status="awaiting_stock" if lines else "pending",
            grid_id=resident.grid_id,
            building_id=resident.building_id,
            lat=resident.lat,
            lon=resident.lon,
            source=source,
            raised_by=raised_by,
            redemption_id=redemption_id,
            recurrence_id=recurrence_id,
            refill_due=due if recurrence_id else None,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(request)
        self._history(uow, request, raised_by, "raised")
        uow.emit(_raised(request))
        if not lines:
            await self._assign(uow, request)
        return request

    async def request(self, request_id: str) -> tuple[ServiceRequest, list[RequestHistory]]:
        async with self.runtime.db.session() as session:
            request = await session.get(ServiceRequest, request_id)
            if request is None:
                raise NotFound(f"no request {request_id!r}")
            history = (
                await session.execute(
                    select(RequestHistory).where(RequestHistory.request_id == request_id).order_by(RequestHistory.history_id)
                )
            ).scalars().all()
        return request, list(history)

    async def requests(self, *, status: str | None = None, volunteer_id: str | None = None, resident_id: str | None = None, grid_ids: Sequence[str] | None = None, limit: int = 200) -> list[ServiceRequest]:
        query = select(ServiceRequest).order_by(ServiceRequest.due_by).limit(limit)
        if status:
            query = query.where(ServiceRequest.status == status)
        if volunteer_id:
            query = query.where(ServiceRequest.volunteer_id == volunteer_id)
        if resident_id:
            query = query.where(ServiceRequest.resident_id == resident_id)
        if grid_ids is not None:
            query = query.where(ServiceRequest.grid_id.in_(grid_ids))
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars().all())

    # -- the saga with supplies ---------------------------------------------------------

    async def stock_reserved(self, event: StockReserved, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as w:
            request = await w.session.get(ServiceRequest, event.request_id)
            if request is None or request.status not in ("awaiting_stock", "waiting_for_stock"):
                log.info("StockReserved for %s ignored: %s", event.request_id, request.status if request else "unknown")
                return
            request.status = "pending"
            request.shortages = []
            self._history(w, request, "supplies", "stock reserved")
            await self._assign(w, request)

    async def reservation_rejected(self, event: ReservationRejected, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as w:
            request = await w.session.get(ServiceRequest, event.request_id)
            if request is None or request.status != "awaiting_stock":
                log.info("ReservationRejected for %s ignored", event.request_id)
                return
            request.status = "waiting_for_stock"
            request.shortages = [s.model_dump() for s in event.shortages]
            short = ", ".join(f"{s.item_id} ({s.available:g} of {s.requested:g})" for s in event.shortages)
            self._history(w, request, "supplies", f"waiting for stock: {short}")

    async def stock_restored(self, event: StockRestored, uow: UnitOfWork | None = None) -> int:
        """Stock is back: ask supplies again for the requests that were short of this item."""
        async with self.runtime.work(uow) as w:
            waiting = (
                await w.session.execute(
                    select(ServiceRequest).where(ServiceRequest.status == "waiting_for_stock").order_by(ServiceRequest.due_by)
                )
            ).scalars().all()
            retried = 0
            for request in waiting:
                if not any(s.get("item_id") == event.item_id for s in request.shortages or request.items):
                    continue
                request.status = "awaiting_stock"
                request.reservation_attempt += 1
                self._history(w, request, "supplies", f"{event.item_id} back in stock: reserving again")
                w.emit(_raised(request))
                retried += 1
            return retried

    # -- the time bank ------------------------------------------------------------------

    async def hours_redeemed(self, event: HoursRedeemed, envelope_id: str, uow: UnitOfWork | None = None) -> None:
        """A member spent hours on a service: raise it for them, once per redemption; if it
        cannot be served, cancel it with the redemption id so the time bank refunds."""
        request_id = event.request_id or "RQ-" + uuid.uuid5(NAMESPACE, event.redemption_id or envelope_id).hex[:16]
        async with self.runtime.work(uow) as w:
            if await w.session.get(ServiceRequest, request_id) is not None:
                return
            resident_id = event.for_member_id or event.member_id
            resident = await w.session.get(KnownResident, resident_id)
            purpose = (event.purpose or "").strip().lower()
            category = purpose if purpose in domain.CATEGORIES else self.settings.timebank_default_category
            if resident is None:
                w.emit(
                    RequestCancelled(
                        request_id=request_id,
                        reason=f"{resident_id} is not a registered resident: the service cannot be delivered",
                        redemption_id=event.redemption_id,
                    )
                )
                return
            details = event.details or event.purpose or event.reason
            await self._raise(
                w, resident, category, details, (), None, source="timebank", raised_by=event.member_id,
                request_id=request_id, redemption_id=event.redemption_id,
            )

    # -- assignment -----------------------------------------------------------------------

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
        uow.session.add(RequestHistory(request_id=request.request_id, at=self.clock.now(), status="assigned", by=chosen.volunteer_id, note="assigned"))
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
                await session.execute(
                    select(ServiceRequest.request_id).where(ServiceRequest.status == "pending").order_by(ServiceRequest.due_by).limit(500)
                )
            ).scalars().all()
        assigned = 0
        for request_id in ids:
            async with self.runtime.uow() as uow:
                request = await uow.get_for_update(ServiceRequest, request_id)
                if request is None or request.status != "pending":
                    continue
                if await self._assign(uow, request):
                    assigned += 1
                    await uow.commit()
        return assigned

    async def sweep_overdue(self) -> int:
        """Requests past due: `RequestOverdue` once per assignment, then another volunteer
        (who gets two hours: the request is now urgent)."""
        now = self.clock.now()
        async with self.runtime.db.session() as session:
            ids = (
                await session.execute(
                    select(ServiceRequest.request_id).where(ServiceRequest.status.in_(domain.OPEN), ServiceRequest.due_by < now)
                )
            ).scalars().all()
        noticed = 0
        for request_id in ids:
            async with self.runtime.uow() as uow:
                request = await uow.session.get(ServiceRequest, request_id)
                if request is None or request.status not in domain.OPEN or request.due_by >= now:
                    continue
                claimed = await insert_ignore(
                    uow.session,
                    OverdueNotice,
                    {"request_id": request_id, "assignment_no": request.assignment_no, "volunteer_id": request.volunteer_id, "noticed_at": now},
                    ["request_id", "assignment_no"],
                )
                if not claimed:
                    continue
                late = request.volunteer_id
                uow.emit(RequestOverdue(request_id=request_id, due_by=request.due_by, volunteer_id=late, category=request.category))
                self._history(uow, request, "dispatch", f"overdue (was due {request.due_by.isoformat()}); reassigning")
                request.priority = "urgent"
                request.due_by = now + timedelta(hours=domain.SLA_HOURS["urgent"])
                await self._assign(uow, request, exclude=[late] if late else [])
                await uow.commit()
                noticed += 1
        return noticed

    # -- fulfilment -----------------------------------------------------------------------

    async def fulfil(self, actor: domain.Actor, request_id: str, volunteer_id: str, service_minutes: int, note: str | None) -> ServiceRequest:
        async with self.runtime.uow() as uow:
            request = await self._get(uow, request_id)
            domain.check_fulfilment(request.status, request.volunteer_id, volunteer_id, actor, service_minutes)
            request.status = "fulfilled"
            request.service_minutes = service_minutes
            request.note = note
            request.fulfilled_at = self.clock.now()
            self._history(uow, request, actor.sub, note or "fulfilled")
            uow.emit(
                RequestFulfilled(
                    request_id=request_id,
                    volunteer_id=volunteer_id,
                    service_minutes=service_minutes,
                    resident_id=request.resident_id,
                    category=request.category,
                    note=note,
                )
            )
            await uow.commit()
        return request

    async def fail(self, actor: domain.Actor, request_id: str, volunteer_id: str, reason: str) -> ServiceRequest:
        """A delivery that could not be made: the reason is kept, the request goes back in the queue."""
        if not reason.strip():
            raise Invalid("say why the delivery failed (reason)")
        async with self.runtime.uow() as uow:
            request = await self._get(uow, request_id)
            domain.check_fulfilment(request.status, request.volunteer_id, volunteer_id, actor, 0)
            request.failed_attempts += 1
            request.status, request.volunteer_id, request.run_id = "pending", None, None
            self._history(uow, request, actor.sub, f"delivery failed: {reason}")
            uow.emit(DeliveryFailed(request_id=request_id, volunteer_id=volunteer_id, reason=reason, attempts=request.failed_attempts))
            await self._assign(uow, request)
            await uow.commit()
        return request

    async def cancel(self, actor: domain.Actor, request_id: str, reason: str) -> ServiceRequest:
        async with self.runtime.uow() as uow:
            request = await self._get(uow, request_id)
            if actor.role == "resident" and actor.sub != request.resident_id:
                raise Forbidden("residents cancel only their own requests")
            if actor.role not in domain.DISPATCH_STAFF and actor.role != "resident":
                raise Forbidden(f"role {actor.role!r} cannot cancel requests")
            if request.status in ("fulfilled", "cancelled"):
                raise Invalid(f"request is already {request.status}")
            request.status, request.run_id = "cancelled", None
            self._history(uow, request, actor.sub, f"cancelled: {reason}")
            uow.emit(RequestCancelled(request_id=request_id, reason=reason, redemption_id=request.redemption_id))
            await uow.commit()
        return request

    async def _get(self, uow: UnitOfWork, request_id: str) -> ServiceRequest:
        request = await uow.get_for_update(ServiceRequest, request_id)
        if request is None:
            raise NotFound(f"no request {request_id!r}")
        return request

    # -- delivery runs ------------------------------------------------------------------

    def default_slot(self) -> tuple[datetime, datetime]:
        now = self.clock.now()
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(hours=self.settings.slot_hours)

    async def plan_runs(self, order: PlanRequest) -> PlanResult:
        """Batch the deliveries due in the slot into runs and route each with OR-Tools."""
        slot_start, slot_end = order.slot_start, order.slot_end
        if slot_end <= slot_start:
            raise Invalid("slot_end must be after slot_start")
        if slot_end - slot_start > timedelta(hours=12):
            raise Invalid("a slot is at most 12 hours")
        depot = (
            order.depot_lat if order.depot_lat is not None else self.settings.depot_lat,
            order.depot_lon if order.depot_lon is not None else self.settings.depot_lon,
        )
        domain.check_coordinates(*depot)
        async with self.runtime.db.session() as session:
            requests = await self._plannable(session, slot_start, slot_end)
            volunteers = await self._run_volunteers(session, order.volunteer_ids, slot_start, slot_end)
        result = PlanResult(slot_start, slot_end, [], len(requests), [], len(volunteers))
        if not requests:
            return result
        horizon = int((slot_end - slot_start).total_seconds())
        service_s = int(self.settings.service_minutes_per_stop * 60)
        stops = [_stop(r, slot_start, horizon, service_s) for r in requests]
        vehicles = [_vehicle(v, slot_start, slot_end, self.tz) for v in volunteers]
        problem = routing.Problem(depot, stops, vehicles, horizon, speed_mps=self.settings.speed_kmh / 3.6)
        matrix = await asyncio.to_thread(problem.matrix, self.distance)
        problem = routing.Problem(depot, stops, vehicles, horizon, speed_mps=problem.speed_mps, distances=matrix)
        plan = await asyncio.to_thread(routing.solve, problem, time_limit_s=order.time_limit_s or self.settings.plan_time_limit_s)
        index = {s.key: i + 1 for i, s in enumerate(stops)}
        by_id = {r.request_id: r for r in requests}
        async with self.runtime.uow() as uow:
            residents = await self._residents(uow.session, [r.resident_id for r in requests])
            for route in plan.routes:
                run_id = "RUN-" + uuid.uuid4().hex[:12]
                kept: list[tuple[str, int]] = []
                for request_id, arrival in zip(route.stops, route.arrivals_s, strict=True):
                    if await self._claim(uow, request_id, run_id, route.vehicle):
                        kept.append((request_id, arrival))
                if not kept:
                    continue
                path = [0, *(index[k] for k, _ in kept), 0]
                metres = float(sum(matrix[a, b] for a, b in zip(path, path[1:], strict=False)))
                run = DeliveryRun(
                    run_id=run_id,
                    volunteer_id=route.vehicle,
                    slot_start=slot_start,
                    slot_end=slot_end,
                    depot_id=order.depot_id or self.settings.depot_id,
                    depot_lat=depot[0],
                    depot_lon=depot[1],
                    distance_m=metres,
                    return_at=slot_start + timedelta(seconds=route.return_s),
                    stops=[_stop_sheet(by_id[k], residents.get(by_id[k].resident_id), slot_start + timedelta(seconds=a)) for k, a in kept],
                    planned_at=self.clock.now(),
                )
                uow.session.add(run)
                for k, _ in kept:
                    request = by_id[k]
                    previous = request.volunteer_id
                    if previous != route.vehicle:
                        uow.emit(RequestAssigned(request_id=k, volunteer_id=route.vehicle, due_by=request.due_by, previous_volunteer_id=previous, category=request.category))
                    uow.session.add(RequestHistory(request_id=k, at=self.clock.now(), status="planned", by=route.vehicle, note=f"in run {run_id}"))
                uow.emit(
                    DeliveryPlanned(
                        run_id=run_id,
                        volunteer_id=route.vehicle,
                        stops=[k for k, _ in kept],
                        distance_m=metres,
                        etas=[slot_start + timedelta(seconds=a) for _, a in kept],
                        depot_id=run.depot_id,
                    )
                )
                result.runs.append(run)
            await uow.commit()
        planned = {s["request_id"] for run in result.runs for s in run.stops}
        result.unplanned = [r.request_id for r in requests if r.request_id not in planned]
        return result

    async def _claim(self, uow: UnitOfWork, request_id: str, run_id: str, volunteer_id: str) -> bool:
        """Put a request in a run unless someone else planned, fulfilled or cancelled it meanwhile."""
        result = await uow.session.execute(
            update(ServiceRequest)
            .where(ServiceRequest.request_id == request_id, ServiceRequest.run_id.is_(None), ServiceRequest.status.in_(PLANNABLE))
            .values(
                run_id=run_id,
                status="planned",
                volunteer_id=volunteer_id,
                # a new volunteer is a new assignment (its own overdue notice); the same one is not
                assignment_no=case(
                    (ServiceRequest.volunteer_id == volunteer_id, ServiceRequest.assignment_no),
                    else_=ServiceRequest.assignment_no + 1,
                ),
                updated_at=self.clock.now(),
            )
        )
        return bool(result.rowcount)

    async def _plannable(self, session, slot_start: datetime, slot_end: datetime) -> list[ServiceRequest]:
        query = (
            select(ServiceRequest)
            .where(
                ServiceRequest.status.in_(PLANNABLE),
                ServiceRequest.run_id.is_(None),
                ServiceRequest.lat.is_not(None),
                ServiceRequest.lon.is_not(None),
                or_(ServiceRequest.window_start.is_(None), ServiceRequest.window_start < slot_end),
                or_(ServiceRequest.window_end.is_(None), ServiceRequest.window_end > slot_start),
            )
            .order_by(ServiceRequest.created_at, ServiceRequest.request_id)
        )
        rows = (await session.execute(query)).scalars().all()
        return [r for r in rows if r.category in domain.DELIVERY_CATEGORIES or r.items]

    async def _run_volunteers(self, session, volunteer_ids: Sequence[str], slot_start: datetime, slot_end: datetime) -> list[Volunteer]:
        query = select(Volunteer).where(Volunteer.active.is_(True)).order_by(Volunteer.volunteer_id)
        if volunteer_ids:
            query = query.where(Volunteer.volunteer_id.in_(volunteer_ids))
        else:
            query = query.where(Volunteer.group == "errands")
        volunteers = (await session.execute(query)).scalars().all()
        if volunteer_ids:
            missing = set(volunteer_ids) - {v.volunteer_id for v in volunteers}
            if missing:
                raise NotFound(f"no active volunteer {', '.join(sorted(missing))}")
        busy = set(
            (
                await session.execute(
                    select(DeliveryRun.volunteer_id).where(
                        DeliveryRun.status == "planned", DeliveryRun.slot_start < slot_end, DeliveryRun.slot_end > slot_start
                    )
                )
            ).scalars()
        )
        return [
            v
            for v in volunteers
            if v.volunteer_id not in busy
            and domain.available_between(tuple(_availability(a) for a in v.availability), slot_start, slot_end, self.tz)
        ]

    async def _residents(self, session, ids: Sequence[str]) -> dict[str, KnownResident]:
        rows = (await session.execute(select(KnownResident).where(KnownResident.resident_id.in_(set(ids))))).scalars().all()
        return {r.resident_id: r for r in rows}

    async def run(self, run_id: str) -> tuple[DeliveryRun, Volunteer | None, dict[str, str]]:
        async with self.runtime.db.session() as session:
            run = await session.get(DeliveryRun, run_id)
            if run is None:
                raise NotFound(f"no delivery run {run_id!r}")
            volunteer = await session.get(Volunteer, run.volunteer_id)
            ids = [s["request_id"] for s in run.stops]
            statuses = dict(
                (await session.execute(select(ServiceRequest.request_id, ServiceRequest.status).where(ServiceRequest.request_id.in_(ids)))).all()
            )
        return run, volunteer, statuses

    async def runs_for(self, volunteer_id: str) -> list[DeliveryRun]:
        async with self.runtime.db.session() as session:
            rows = await session.execute(
                select(DeliveryRun).where(DeliveryRun.volunteer_id == volunteer_id).order_by(DeliveryRun.slot_start.desc()).limit(20)
            )
            return list(rows.scalars().all())

    # -- the green channel ------------------------------------------------------------------

    async def add_recurrence(
        self, actor: domain.Actor, resident_id: str, items: Sequence[ItemLine], details: str | None, every_days: int, first_due: datetime, lead_days: int | None
    ) -> Recurrence:
        if not 1 <= every_days <= 180:
            raise Invalid(f"every_days {every_days} must be between 1 and 180")
        lead = self.settings.refill_lead_days if lead_days is None else lead_days
        if not 0 <= lead < every_days + 1:
            raise Invalid(f"lead_days {lead} must be between 0 and every_days")
        if first_due.tzinfo is None:
            raise Invalid("first_due needs a time zone offset")
        async with self.runtime.uow() as uow:
            resident = await self._resident(uow, resident_id)
            domain.source_for(actor, resident_id, resident.grid_id, resident.building_id)
            if "chronic" not in resident.tags:
                raise Invalid(f"the green channel is for chronic patients; {resident_id} is not tagged chronic")
            recurrence = Recurrence(
                recurrence_id="GC-" + uuid.uuid4().hex[:12],
                resident_id=resident_id,
                details=details,
                items=[line.model_dump() for line in _merge_lines(items)],
                every_days=every_days,
                lead_days=lead,
                next_due=first_due,
                created_by=actor.sub,
                created_at=self.clock.now(),
            )
            uow.session.add(recurrence)
            await uow.commit()
        await self.raise_refills()
        return recurrence

    async def raise_refills(self) -> int:
        """The job: raise each refill `lead_days` before it is due, with raised priority.
        The request id comes from (recurrence, due date), so replicas raise it once."""
        now = self.clock.now()
        async with self.runtime.db.session() as session:
            ids = (await session.execute(select(Recurrence.recurrence_id).where(Recurrence.active.is_(True)))).scalars().all()
        raised = 0
        for recurrence_id in ids:
            async with self.runtime.uow() as uow:
                recurrence = await uow.get_for_update(Recurrence, recurrence_id)
                dues = domain.next_refills(recurrence.next_due, recurrence.every_days, timedelta(days=recurrence.lead_days), now)
                if not dues:
                    continue
                resident = await uow.session.get(KnownResident, recurrence.resident_id)
                for due in dues:
                    request_id = "RQ-" + uuid.uuid5(NAMESPACE, f"{recurrence_id}|{due.isoformat()}").hex[:16]
                    if resident is None or await uow.session.get(ServiceRequest, request_id) is not None:
                        continue
                    priority = domain.raise_priority(domain.priority_for("medicine", resident.tags))
                    await self._raise(
                        uow, resident, "medicine", recurrence.details or "green channel refill",
                        [ItemLine(**i) for i in recurrence.items], None, source="green_channel", raised_by="green-channel",
                        request_id=request_id, priority=priority, due=max(due, now + timedelta(hours=domain.SLA_HOURS[priority])),
                        recurrence_id=recurrence_id,
                    )
                    raised += 1
                recurrence.next_due = dues[-1] + timedelta(days=recurrence.every_days)
                await uow.commit()
        return raised

    async def recurrences(self, resident_id: str) -> list[Recurrence]:
        async with self.runtime.db.session() as session:
            rows = await session.execute(select(Recurrence).where(Recurrence.resident_id == resident_id))
            return list(rows.scalars().all())

    # -- hot demands ----------------------------------------------------------------------

    async def demand(self, since: datetime, until: datetime, bucket: str) -> dict:
        if until <= since:
            raise Invalid("'to' must be after 'from'")
        if until - since > timedelta(days=93):
            raise Invalid("ask for at most 93 days at a time")
        async with self.runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(ServiceRequest.created_at, ServiceRequest.category, ServiceRequest.grid_id).where(
                        ServiceRequest.created_at >= since, ServiceRequest.created_at < until
                    )
                )
            ).all()
            surges = (
                await session.execute(select(Surge).where(Surge.window_end > since, Surge.window_start < until).order_by(Surge.window_start))
            ).scalars().all()
        series = domain.demand_series(rows, bucket, self.tz)
        latest = await self._latest_tests()
        return {
            "from": since,
            "to": until,
            "bucket": bucket,
            "totals": series.totals,
            "by_time": series.buckets,
            "by_grid": series.grids,
            "latest_window": latest,
            "surges": [s.model_dump() for s in surges],
        }

    async def _latest_tests(self) -> dict:
        """The latest complete window of each category tested against its baseline."""
        length = timedelta(hours=self.settings.surge_window_hours)
        window_end = domain.window_floor(self.clock.now(), length)
        window_start = window_end - length
        baseline_start = window_start - timedelta(days=self.settings.surge_baseline_days)
        async with self.runtime.db.session() as session:
            first = await session.scalar(select(func.min(ServiceRequest.created_at)).where(ServiceRequest.source != "green_channel"))
            rows = (
                await session.execute(
                    select(ServiceRequest.created_at, ServiceRequest.category).where(
                        ServiceRequest.created_at >= baseline_start,
                        ServiceRequest.created_at < window_end,
                        ServiceRequest.source != "green_channel",
                    )
                )
            ).all()
        if first is None:
            return {"window_start": window_start, "window_end": window_end, "categories": {}}
        history_start = max(baseline_start, domain.window_floor(first, length))
        windows = int((window_start - history_start) / length)
        counts: dict[str, list[int]] = {c: [0] * (windows + 1) for c in domain.CATEGORIES}
        for at, category in rows:
            slot = int((at - history_start) / length)
            if 0 <= slot <= windows and category in counts:
                counts[category][slot] += 1
        tests = {}
        for category, series in counts.items():
            if windows < 1:
                continue  # no history yet: nothing to compare with
            test = domain.surge_test(series[-1], series[:-1], self.settings.surge_alpha, self.settings.surge_min_count)
            tests[category] = {"count": test.count, "baseline": test.baseline, "p_value": test.p_value, "surge": test.surge, "baseline_windows": windows}
        return {"window_start": window_start, "window_end": window_end, "categories": tests}

    async def detect_surges(self) -> int:
        """The job: emit `DemandSurge` once per category and window when the test says so."""
        latest = await self._latest_tests()
        found = 0
        for category, test in latest["categories"].items():
            if not test["surge"]:
                continue
            action = domain.SURGE_ACTIONS[category]
            async with self.runtime.uow() as uow:
                claimed = await insert_ignore(
                    uow.session,
                    Surge,
                    {
                        "category": category,
                        "window_start": latest["window_start"],
                        "window_end": latest["window_end"],
                        "count": test["count"],
                        "baseline": test["baseline"],
                        "p_value": test["p_value"],
                        "suggested_action": action,
                        "detected_at": self.clock.now(),
                    },
                    ["category", "window_start"],
                )
                if claimed:
                    uow.emit(
                        DemandSurge(
                            category=category,
                            count=test["count"],
                            baseline=test["baseline"],
                            window_start=latest["window_start"],
                            window_end=latest["window_end"],
                            p_value=test["p_value"],
                            suggested_action=action,
                        )
                    )
                    found += 1
                await uow.commit()
        return found


def _merge_lines(items: Sequence[ItemLine]) -> list[ItemLine]:
    merged: dict[str, float] = {}
    for line in items:
        merged[line.item_id] = merged.get(line.item_id, 0) + line.quantity
    return [ItemLine(item_id=k, quantity=v) for k, v in merged.items()]


def _raised(request: ServiceRequest) -> RequestRaised:
    return RequestRaised(
        request_id=request.request_id,
        resident_id=request.resident_id,
        category=request.category,
        priority=request.priority,
        due_by=request.due_by,
        items=[ItemLine(**i) for i in request.items],
        details=request.details,
        grid_id=request.grid_id,
        building_id=request.building_id,
        raised_by=request.raised_by,
        source=request.source,
        redemption_id=request.redemption_id,
        window_start=request.window_start,
        window_end=request.window_end,
        reservation_attempt=request.reservation_attempt if request.reservation_attempt > 1 else None,
        recurrence_id=request.recurrence_id,
    )


def _availability_json(a: domain.Availability) -> dict:
    return {"start": a.start.strftime("%H:%M"), "end": a.end.strftime("%H:%M"), "days": list(a.days)}


def _availability(raw: dict) -> domain.Availability:
    return domain.Availability(time.fromisoformat(raw["start"]), time.fromisoformat(raw["end"]), tuple(raw.get("days") or ()))


def _stop(request: ServiceRequest, slot_start: datetime, horizon: int, service_s: int) -> routing.Stop:
    earliest = 0
    latest = horizon
    if request.window_start is not None:
        earliest = max(0, int((request.window_start - slot_start).total_seconds()))
    if request.window_end is not None:
        latest = min(latest, int((request.window_end - slot_start).total_seconds()))
    due = int((request.due_by - slot_start).total_seconds())
    if 0 < due < latest:
        latest = due
    return routing.Stop(
        key=request.request_id,
        lat=request.lat,
        lon=request.lon,
        earliest_s=min(earliest, horizon),
        latest_s=max(latest, min(earliest, horizon)),
        service_s=service_s,
        weight=PRIORITY_WEIGHT.get(request.priority, 1),
    )


def _vehicle(volunteer: Volunteer, slot_start: datetime, slot_end: datetime, tz) -> routing.Vehicle:
    return routing.Vehicle(key=volunteer.volunteer_id, capacity=volunteer.capacity, start_s=0, end_s=int((slot_end - slot_start).total_seconds()))


def _stop_sheet(request: ServiceRequest, resident: KnownResident | None, eta: datetime) -> dict:
    """What a volunteer needs at the door, frozen into the run when it is planned."""
    return {
        "request_id": request.request_id,
        "eta": eta.isoformat(),
        "category": request.category,
        "priority": request.priority,
        "items": request.items,
        "details": request.details,
        "resident_id": request.resident_id,
        "name": resident.name if resident else None,
        "phone": resident.phone if resident else None,
        "building_id": request.building_id,
        "unit": resident.unit if resident else None,
        "room": resident.room if resident else None,
        "lat": request.lat,
        "lon": request.lon,
        "window_end": request.window_end.isoformat() if request.window_end else None,
        "due_by": request.due_by.isoformat(),
    }
