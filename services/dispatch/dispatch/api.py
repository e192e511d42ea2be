"""Dispatch HTTP routes: parse, authorise, call the use case, shape the answer."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime, BaseModel, Field

from common.auth import CurrentUser, Principal, Role, require
from common.errors import Forbidden
from common.events.dispatch import ItemLine
from common.limits import Paged, RequestModel, neutralised
from dispatch import domain
from dispatch.models import DeliveryRun, RequestHistory, ServiceRequest, Volunteer
from dispatch.service import DispatchService, PlanRequest, VolunteerDraft

router = APIRouter()


async def get_service(request: Request) -> DispatchService:
    return request.app.state.service


Service = Annotated[DispatchService, Depends(get_service)]
Dispatcher = Annotated[Principal, Depends(require(Role.dispatcher, Role.command))]
Analyst = Annotated[
    Principal, Depends(require(Role.dispatcher, Role.command, Role.grid_worker, Role.supplies_officer, Role.partner))
]


def actor(user: Principal) -> domain.Actor:
    return domain.Actor(user.sub, user.role, tuple(user.grid_ids), tuple(user.building_ids))


def is_dispatch_staff(user: Principal) -> bool:
    return user.role in domain.DISPATCH_STAFF


# -- requests -----------------------------------------------------------------------------


class WindowIn(RequestModel):
    start: AwareDatetime
    end: AwareDatetime


class RequestIn(RequestModel):
    resident_id: str
    category: str = Field(description=f"one of {', '.join(domain.CATEGORIES)}")
    details: str | None = Field(default=None, max_length=2000)
    items: list[ItemLine] = Field(default_factory=list, max_length=50)
    window: WindowIn | None = None


class HistoryOut(BaseModel):
    at: datetime
    status: str
    by: str
    note: str | None


class RequestOut(BaseModel):
    request_id: str
    resident_id: str
    category: str
    details: str | None
    items: list[dict]
    priority: str
    due_by: datetime
    window_start: datetime | None
    window_end: datetime | None
    status: str
    volunteer_id: str | None
    volunteer_name: str | None = Field(default=None, description="who will come: the assigned volunteer's name")
    run_id: str | None
    grid_id: str | None
    building_id: str | None
    source: str
    raised_by: str
    shortages: list[dict]
    failed_attempts: int
    service_minutes: int | None
    note: str | None
    created_at: datetime
    fulfilled_at: datetime | None
    history: list[HistoryOut] = Field(default_factory=list)


def _request_out(
    request: ServiceRequest, history: list[RequestHistory] = (), names: dict[str, str] | None = None
) -> RequestOut:
    return RequestOut(
        **request.model_dump(),
        volunteer_name=(names or {}).get(request.volunteer_id or ""),
        history=[HistoryOut(**h.model_dump()) for h in history],
    )


def _may_see(user: Principal, request: ServiceRequest) -> bool:
    if is_dispatch_staff(user):
        return True
    if user.role == Role.resident:
        return user.sub == request.resident_id
    if user.role == Role.volunteer:
        return user.sub == request.volunteer_id
    if user.role == Role.building_lead:
        return request.building_id in user.building_ids
    if user.role == Role.grid_worker:
        return request.grid_id in user.grid_ids
    return False


@router.post("/requests", status_code=status.HTTP_201_CREATED, response_model=RequestOut, tags=["requests"])
async def raise_request(body: RequestIn, user: CurrentUser, service: Service):
    """A resident's need (or a building lead's, on their behalf). Priority comes from the
    category and the resident's tags, `due_by` from the SLA table. Emits `RequestRaised`;
    without items it is assigned at once (`RequestAssigned`), with items once supplies
    reserves them (`StockReserved`)."""
    window = domain.Window(body.window.start, body.window.end) if body.window else None
    request = await service.raise_request(
        actor(user), body.resident_id, body.category, body.details, body.items, window
    )
    _, history = await service.request(request.request_id)
    return _request_out(request, history)


@router.get("/requests", response_model=list[RequestOut], tags=["requests"])
async def list_requests(
    user: CurrentUser,
    service: Service,
    page: Paged,
    status_: Annotated[str | None, Query(alias="status")] = None,
    volunteer_id: str | None = None,
    resident_id: str | None = None,
):
    """Staff see all; a volunteer their own queue; a resident their own requests; a grid
    worker their grids."""
    grids = None
    if user.role == Role.volunteer:
        volunteer_id = user.sub
    elif user.role == Role.resident:
        resident_id = user.sub
    elif user.role == Role.grid_worker:
        grids = list(user.grid_ids)
    elif not is_dispatch_staff(user):
        raise Forbidden(f"role {user.role.value!r} cannot list requests")
    requests = await service.requests(
        status=status_,
        volunteer_id=volunteer_id,
        resident_id=resident_id,
        grid_ids=grids,
        limit=page.limit,
        offset=page.offset,
    )
    names = await service.volunteer_names({r.volunteer_id for r in requests if r.volunteer_id})
    return [_request_out(r, names=names) for r in requests]


@router.get("/requests/{request_id}", response_model=RequestOut, tags=["requests"])
async def get_request(request_id: str, user: CurrentUser, service: Service):
    request, history = await service.request(request_id)
    if not _may_see(user, request):
        raise Forbidden("you may not see this request")
    names = await service.volunteer_names({request.volunteer_id} if request.volunteer_id else set())
    return _request_out(request, history, names)


class FulfilIn(RequestModel):
    volunteer_id: str
    service_minutes: int = Field(ge=0, le=1440)
    note: str | None = Field(default=None, max_length=2000)


@router.post("/requests/{request_id}/fulfil", response_model=RequestOut, tags=["requests"])
async def fulfil(request_id: str, body: FulfilIn, user: CurrentUser, service: Service):
    """The assigned volunteer marks the request done: `RequestFulfilled` (the time bank
    credits the hours). Anyone else gets 403."""
    request = await service.fulfil(actor(user), request_id, body.volunteer_id, body.service_minutes, body.note)
    _, history = await service.request(request_id)
    return _request_out(request, history)


class FailIn(RequestModel):
    volunteer_id: str
    reason: str = Field(min_length=1, max_length=500)


@router.post("/requests/{request_id}/fail", response_model=RequestOut, tags=["requests"])
async def fail(request_id: str, body: FailIn, user: CurrentUser, service: Service):
    """A delivery that could not be made (nobody home...): the reason is kept
    (`DeliveryFailed`) and the request goes back in the queue."""
    request = await service.fail(actor(user), request_id, body.volunteer_id, body.reason)
    _, history = await service.request(request_id)
    return _request_out(request, history)


class AssignIn(RequestModel):
    volunteer_id: str
    note: str | None = Field(default=None, max_length=500)


@router.post("/requests/{request_id}/assign", response_model=RequestOut, tags=["requests"])
async def assign(request_id: str, body: AssignIn, user: Dispatcher, service: Service):
    """A dispatcher gives the request to a volunteer by hand (`RequestAssigned`): one not in
    a run and not done. A request in a run is refused (422): fail its stop first."""
    request = await service.assign_by_hand(actor(user), request_id, body.volunteer_id, body.note)
    _, history = await service.request(request_id)
    return _request_out(request, history)


class CancelIn(RequestModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/requests/{request_id}/cancel", response_model=RequestOut, tags=["requests"])
async def cancel(request_id: str, body: CancelIn, user: CurrentUser, service: Service):
    """`RequestCancelled`: supplies releases the reserved stock, the time bank refunds."""
    request = await service.cancel(actor(user), request_id, body.reason)
    _, history = await service.request(request_id)
    return _request_out(request, history)


# -- volunteers ---------------------------------------------------------------------------


class AvailabilityIn(RequestModel):
    start: time
    end: time
    days: list[int] = Field(
        default_factory=list, max_length=7, description="ISO weekdays, 1 = Monday; empty: every day"
    )


class VolunteerIn(RequestModel):
    volunteer_id: str | None = Field(default=None, description="their time-bank member id, if they have one")
    name: str = Field(min_length=1, max_length=100)
    group: str = Field(description=f"one of {', '.join(domain.GROUPS)}")
    lat: float
    lon: float
    capacity: int = Field(description="requests per run")
    phone: str = Field(min_length=3, max_length=30)
    skills: list[str] = Field(default_factory=list, max_length=20)
    availability: list[AvailabilityIn] = Field(default_factory=list, max_length=30)


@router.post("/volunteers", status_code=status.HTTP_201_CREATED, tags=["volunteers"])
async def register_volunteer(body: VolunteerIn, _: Dispatcher, service: Service) -> dict:
    draft = VolunteerDraft(
        volunteer_id=body.volunteer_id,
        name=body.name,
        group=body.group,
        lat=body.lat,
        lon=body.lon,
        capacity=body.capacity,
        phone=body.phone,
        skills=tuple(s.strip().lower() for s in body.skills if s.strip()),
        availability=tuple(domain.Availability(a.start, a.end, tuple(a.days)) for a in body.availability),
    )
    volunteer = await service.register_volunteer(draft)
    return volunteer.model_dump()


@router.get("/volunteers", tags=["volunteers"])
async def list_volunteers(_: Dispatcher, service: Service, page: Paged) -> list[dict]:
    """Everyone with their open requests: shows whether work is balanced."""
    return page.of(await service.volunteers())


def _self_or_staff(user: Principal, volunteer_id: str) -> None:
    if not (is_dispatch_staff(user) or (user.role == Role.volunteer and user.sub == volunteer_id)):
        raise Forbidden("you may see only your own volunteer record")


@router.get("/volunteers/{volunteer_id}", tags=["volunteers"])
async def get_volunteer(volunteer_id: str, user: CurrentUser, service: Service) -> dict:
    _self_or_staff(user, volunteer_id)
    return (await service.volunteer(volunteer_id)).model_dump()


@router.get("/volunteers/{volunteer_id}/runs", tags=["runs"])
async def volunteer_runs(volunteer_id: str, user: CurrentUser, service: Service) -> list[dict]:
    _self_or_staff(user, volunteer_id)
    return [
        {
            "run_id": r.run_id,
            "slot_start": r.slot_start,
            "slot_end": r.slot_end,
            "stops": len(r.stops),
            "distance_m": r.distance_m,
        }
        for r in await service.runs_for(volunteer_id)
    ]


# -- delivery runs --------------------------------------------------------------------------


class PlanIn(RequestModel):
    slot_start: AwareDatetime | None = Field(default=None, description="default: now")
    slot_end: AwareDatetime | None = Field(default=None, description="default: slot_start + DISPATCH_SLOT_HOURS")
    volunteer_ids: list[str] = Field(
        default_factory=list, max_length=1000, description="default: every available errand volunteer"
    )
    depot_id: str | None = None
    depot_lat: float | None = None
    depot_lon: float | None = None
    time_limit_s: float | None = Field(default=None, gt=0, le=60)


class StopOut(BaseModel):
    request_id: str
    eta: datetime
    category: str
    priority: str
    items: list[dict]
    details: str | None
    name: str | None
    phone: str | None
    building_id: str | None
    unit: str | None
    room: str | None
    lat: float
    lon: float
    due_by: datetime
    status: str | None = None


class UnplannedOut(BaseModel):
    request_id: str
    reason: str = Field(description="no_volunteer, out_of_reach, too_late, capacity, no_room or taken")
    detail: str
    distance_m: int | None = Field(default=None, description="from the depot")
    needed_minutes: int | None = None
    available_minutes: int | None = None


class RunOut(BaseModel):
    run_id: str
    volunteer_id: str
    volunteer_name: str | None = None
    volunteer_phone: str | None = None
    slot_start: datetime
    slot_end: datetime
    depot_id: str | None
    depot_lat: float
    depot_lon: float
    distance_m: float
    return_at: datetime
    stops: list[StopOut]


def _run_out(run: DeliveryRun, volunteer: Volunteer | None = None, statuses: dict[str, str] | None = None) -> RunOut:
    statuses = statuses or {}
    return RunOut(
        **run.model_dump(exclude={"stops"}),
        volunteer_name=volunteer.name if volunteer else None,
        volunteer_phone=volunteer.phone if volunteer else None,
        stops=[StopOut(**s, status=statuses.get(s["request_id"])) for s in run.stops],
    )


@router.post("/runs/plan", tags=["runs"])
async def plan_runs(body: PlanIn, _: Dispatcher, service: Service) -> dict:
    """Batch pending deliveries of the slot into runs and route each with OR-Tools
    (capacitated vehicle routing with time windows, from and back to the depot). Emits
    `DeliveryPlanned` per run. Nothing pending gives an empty plan. Each delivery left out
    is in `unplanned` with its reason (no volunteer, out of reach of the depot in the slot,
    too late for its window, runs full, no room among the others, taken meanwhile)."""
    start, end = service.default_slot()
    slot_start = body.slot_start or start
    slot_end = body.slot_end or slot_start + (end - start)
    result = await service.plan_runs(
        PlanRequest(
            slot_start,
            slot_end,
            tuple(body.volunteer_ids),
            body.depot_id,
            body.depot_lat,
            body.depot_lon,
            body.time_limit_s,
        )
    )
    return {
        "slot_start": result.slot_start,
        "slot_end": result.slot_end,
        "considered": result.considered,
        "volunteers": result.volunteers,
        "distance_m": sum(r.distance_m for r in result.runs),
        "runs": [_run_out(r) for r in result.runs],
        "unplanned": [
            UnplannedOut(
                request_id=u.key,
                reason=u.reason,
                detail=u.detail,
                distance_m=u.distance_m,
                needed_minutes=None if u.needed_s is None else -(-u.needed_s // 60),
                available_minutes=None if u.available_s is None else u.available_s // 60,
            )
            for u in result.unplanned
        ],
    }


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"], responses={200: {"content": {"text/plain": {}}}})
async def route_sheet(
    run_id: str,
    user: CurrentUser,
    service: Service,
    request: Request,
    format_: Annotated[Literal["json", "text"] | None, Query(alias="format")] = None,
):
    """The route sheet: ordered stops with ETAs, who to call and what to bring. As text
    (`?format=text` or `Accept: text/plain`) to read on a phone or print."""
    run, volunteer, statuses = await service.run(run_id)
    _self_or_staff(user, run.volunteer_id)
    out = _run_out(run, volunteer, statuses)
    if format_ == "text" or (format_ is None and "text/plain" in request.headers.get("accept", "")):
        return PlainTextResponse(route_sheet_text(out, service.tz))
    return out


def route_sheet_text(run: RunOut, tz) -> str:
    local = lambda at: at.astimezone(tz).strftime("%H:%M")  # noqa: E731
    lines = [
        f"Delivery run {run.run_id}  {run.slot_start.astimezone(tz):%Y-%m-%d} {local(run.slot_start)}-{local(run.slot_end)}",
        f"Volunteer: {run.volunteer_name or run.volunteer_id} {run.volunteer_phone or ''}".rstrip(),
        f"Start and finish at depot {run.depot_id or ''} ({run.depot_lat:.5f}, {run.depot_lon:.5f}); "
        f"{run.distance_m / 1000:.1f} km, back about {local(run.return_at)}",
        "",
    ]
    for n, stop in enumerate(run.stops, start=1):
        where = "-".join(p for p in (stop.building_id, stop.unit, stop.room) if p) or f"{stop.lat:.5f},{stop.lon:.5f}"
        things = ", ".join(f"{i['item_id']} x{i['quantity']:g}" for i in stop.items) or stop.category
        # The sheet is printed and forwarded to chats: what residents typed is one plain line
        name = neutralised(" ".join(stop.name.split())) if stop.name else stop.request_id
        lines.append(f"{n:>2}. {local(stop.eta)}  {where}  {name}  {stop.phone or ''}".rstrip())
        details = neutralised(" ".join(stop.details.split())) if stop.details else ""
        lines.append(f"    {stop.priority} {stop.category}: {things}" + (f" — {details}" if details else ""))
        lines.append(
            f"    {stop.request_id}  due {stop.due_by.astimezone(tz):%m-%d %H:%M}  [{stop.status or 'planned'}]  geo:{stop.lat:.6f},{stop.lon:.6f}"
        )
    lines.append("")
    lines.append("Mark each stop: POST /requests/{id}/fulfil (or /fail with the reason).")
    return "\n".join(lines) + "\n"


# -- the green channel ------------------------------------------------------------------------


class RecurrenceIn(RequestModel):
    resident_id: str
    items: list[ItemLine] = Field(default_factory=list, max_length=50)
    details: str | None = Field(default=None, max_length=2000)
    every_days: int
    first_due: AwareDatetime
    lead_days: int | None = None


@router.post("/recurrences", status_code=status.HTTP_201_CREATED, tags=["green channel"])
async def add_recurrence(body: RecurrenceIn, user: CurrentUser, service: Service) -> dict:
    """The green channel for chronic patients: a medicine refill every `every_days`, raised
    `lead_days` ahead with raised priority, so no refill is missed."""
    recurrence = await service.add_recurrence(
        actor(user), body.resident_id, body.items, body.details, body.every_days, body.first_due, body.lead_days
    )
    return recurrence.model_dump()


@router.get("/residents/{resident_id}/recurrences", tags=["green channel"])
async def recurrences(resident_id: str, user: CurrentUser, service: Service) -> list[dict]:
    if not (is_dispatch_staff(user) or (user.role == Role.resident and user.sub == resident_id)):
        raise Forbidden("you may see only your own refills")
    return [r.model_dump() for r in await service.recurrences(resident_id)]


# -- hot demands and jobs ------------------------------------------------------------------------


@router.get("/stats/demand", tags=["stats"])
async def demand(
    _: Analyst,
    service: Service,
    since: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    bucket: Literal["hour", "day"] = "day",
) -> dict:
    """Requests by category over time and by grid, the latest window tested against its
    baseline (Poisson test), and the surges found."""
    now = service.clock.now()
    until = until or now
    since = since or until - timedelta(days=7)
    return await service.demand(since, until, bucket)


@router.post("/jobs/{job}", tags=["operations"])
async def run_job(
    job: Literal["assign-pending", "overdue", "green-channel", "demand-surge"], _: Dispatcher, service: Service
) -> dict:
    """Run a periodic job now (they also run every FIRSTLINE jobs interval)."""
    work = {
        "assign-pending": service.assign_pending,
        "overdue": service.sweep_overdue,
        "green-channel": service.raise_refills,
        "demand-surge": service.detect_surges,
    }[job]
    return {"job": job, "affected": await work()}
