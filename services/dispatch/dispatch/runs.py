"""Delivery runs: the deliveries due in a slot batched into runs, each routed with OR-Tools."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update

from common.errors import Invalid, NotFound
from common.events.dispatch import DeliveryPlanned, RequestAssigned
from common.outbox import UnitOfWork
from dispatch import domain, routing
from dispatch.matching import Matching, availability_from_json
from dispatch.models import DeliveryRun, KnownResident, RequestHistory, ServiceRequest, Volunteer

PRIORITY_WEIGHT = {"low": 1, "normal": 2, "high": 4, "urgent": 8}
PLANNABLE = ("pending", "assigned")


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
    unplanned: list[routing.Unplanned]  # with the reason for each
    volunteers: int


class Runs(Matching):
    def default_slot(self) -> tuple[datetime, datetime]:
        now = self.clock.now()
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(hours=self.settings.slot_hours)

    async def plan_runs(self, order: PlanRequest, *, uow: UnitOfWork | None = None) -> PlanResult:
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
        plan = await asyncio.to_thread(
            routing.solve, problem, time_limit_s=order.time_limit_s or self.settings.plan_time_limit_s
        )
        index = {s.key: i + 1 for i, s in enumerate(stops)}
        by_id = {r.request_id: r for r in requests}
        async with self.runtime.work(uow) as uow:
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
                metres = float(sum(matrix[a, b] for a, b in itertools.pairwise(path)))
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
                    stops=[
                        _stop_sheet(by_id[k], residents.get(by_id[k].resident_id), slot_start + timedelta(seconds=a))
                        for k, a in kept
                    ],
                    planned_at=self.clock.now(),
                )
                uow.session.add(run)
                for k, _ in kept:
                    request = by_id[k]
                    previous = request.volunteer_id
                    if previous != route.vehicle:
                        uow.emit(
                            RequestAssigned(
                                request_id=k,
                                volunteer_id=route.vehicle,
                                due_by=request.due_by,
                                previous_volunteer_id=previous,
                                category=request.category,
                            )
                        )
                    uow.session.add(
                        RequestHistory(
                            request_id=k,
                            at=self.clock.now(),
                            status="planned",
                            by=route.vehicle,
                            note=f"in run {run_id}",
                        )
                    )
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
        planned = {s["request_id"] for run in result.runs for s in run.stops}
        dropped = set(plan.dropped)
        result.unplanned = routing.why_unplanned(problem, [r.request_id for r in requests if r.request_id in dropped])
        result.unplanned += [  # the solver placed them, but another plan or a cancellation took them meanwhile
            routing.Unplanned(r.request_id, "taken", "planned, cancelled or fulfilled elsewhere while this plan ran")
            for r in requests
            if r.request_id not in planned and r.request_id not in dropped
        ]
        return result

    async def _claim(self, uow: UnitOfWork, request_id: str, run_id: str, volunteer_id: str) -> bool:
        """Put a request in a run unless someone else planned, fulfilled or cancelled it meanwhile."""
        result = await uow.session.execute(
            update(ServiceRequest)
            .where(
                ServiceRequest.request_id == request_id,
                ServiceRequest.run_id.is_(None),
                ServiceRequest.status.in_(PLANNABLE),
            )
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

    async def _run_volunteers(
        self, session, volunteer_ids: Sequence[str], slot_start: datetime, slot_end: datetime
    ) -> list[Volunteer]:
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
                        DeliveryRun.status == "planned",
                        DeliveryRun.slot_start < slot_end,
                        DeliveryRun.slot_end > slot_start,
                    )
                )
            ).scalars()
        )
        return [
            v
            for v in volunteers
            if v.volunteer_id not in busy
            and domain.available_between(
                tuple(availability_from_json(a) for a in v.availability), slot_start, slot_end, self.tz
            )
        ]

    async def _residents(self, session, ids: Sequence[str]) -> dict[str, KnownResident]:
        rows = (
            (await session.execute(select(KnownResident).where(KnownResident.resident_id.in_(set(ids)))))
            .scalars()
            .all()
        )
        return {r.resident_id: r for r in rows}

    async def run(self, run_id: str) -> tuple[DeliveryRun, Volunteer | None, dict[str, str]]:
        async with self.runtime.db.session() as session:
            run = await session.get(DeliveryRun, run_id)
            if run is None:
                raise NotFound(f"no delivery run {run_id!r}")
            volunteer = await session.get(Volunteer, run.volunteer_id)
            ids = [s["request_id"] for s in run.stops]
            statuses = dict(
                (
                    await session.execute(
                        select(ServiceRequest.request_id, ServiceRequest.status).where(
                            ServiceRequest.request_id.in_(ids)
                        )
                    )
                ).all()
            )
        return run, volunteer, statuses

    async def runs_for(self, volunteer_id: str) -> list[DeliveryRun]:
        async with self.runtime.db.session() as session:
            rows = await session.execute(
                select(DeliveryRun)
                .where(DeliveryRun.volunteer_id == volunteer_id)
                .order_by(DeliveryRun.slot_start.desc())
                .limit(20)
            )
            return list(rows.scalars().all())


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
    return routing.Vehicle(
        key=volunteer.volunteer_id,
        capacity=volunteer.capacity,
        start_s=0,
        end_s=int((slot_end - slot_start).total_seconds()),
    )


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
