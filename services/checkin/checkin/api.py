"""Check-in HTTP routes: parse, authorise, call the use case, shape the answer."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import APIRouter, Depends, File, Header, HTTPException, Query, Request, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from checkin import domain, importing
from checkin.households import Households
from checkin.service import CheckinService, ensure_scope
from common.accesslog import route_of
from common.auth import BEARER_AUTH, CurrentUser, Principal, Role, authenticate, require
from common.errors import Invalid
from common.limits import RequestModel
from common.vocabulary import Channel

router = APIRouter()


async def get_service(request: Request) -> CheckinService:
    return request.app.state.service


Service = Annotated[CheckinService, Depends(get_service)]
Staff = Annotated[Principal, Depends(require(Role.command))]
Registrar = Annotated[Principal, Depends(require(Role.command, Role.grid_worker, Role.building_lead))]


def actor(user: Principal) -> domain.Actor:
    return domain.Actor(user.sub, user.role.value, tuple(user.grid_ids), tuple(user.building_ids))


# -- check-ins ----------------------------------------------------------------------------
# First in the route table: Starlette tries routes in order, and the morning peak's route
# should not pay a miss for each route before it.


class CheckInIn(RequestModel):
    resident_id: str
    temperature_c: float
    symptoms: list[Annotated[str, Field(max_length=60)]] = Field(default_factory=list, max_length=20)
    channel: Channel | None = None
    date: dt.date | None = None


class CheckInOut(BaseModel):
    resident_id: str
    date: date
    temperature_c: float
    symptoms: list[str]
    fever: bool
    anomaly: bool
    channel: str
    submitted_by: str
    submitted_at: datetime
    revisions: int


# Pydantic reads the body from the bytes, which costs the peak route less than FastAPI's body
# parameter (docs/performance.md); the schema is documented by hand, errors keep FastAPI's shape.
CHECK_IN_BODY = {"required": True, "content": {"application/json": {"schema": CheckInIn.model_json_schema()}}}
IDEMPOTENCY_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 100},
    "description": "Send the same key again to repeat a check-in whose answer was lost: the repeat gets "
    "the first answer and changes nothing. A key is the caller's own, kept CHECKIN_IDEMPOTENCY_KEY_HOURS; "
    "the same key with another check-in is refused (422).",
}


async def check_in_body(request: Request) -> CheckInIn:
    """The request's JSON body as a `CheckInIn`: 415 unless it is JSON, 422 (as FastAPI
    words it) unless it is a valid check-in."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the check-in as JSON (Content-Type: application/json)"
        )
    try:
        return CheckInIn.model_validate_json(await request.body())
    except ValidationError as invalid:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors(include_url=False)]
        ) from None


class DirectRoute(APIRoute):
    """A route FastAPI documents as any other but calls as Starlette calls an endpoint:
    with the Request, for a Response. The peak route does its own parsing and answering,
    skipping FastAPI's per-request work around an endpoint (figures in docs/performance.md)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


async def submit_checkin(request: Request) -> Response:
    """The daily check-in: one per resident per local date (a second one updates it and
    keeps the history). Emits `CheckInSubmitted`, and `HealthAnomalyReported` on a fever
    (≥ 37.3 °C) or a listed symptom. Temperatures outside 34.0–43.0 °C are refused."""
    # The answer is the service's own record, serialised as it is: `response_model` below
    # documents it (a test holds the two together).
    user = authenticate(request)
    if user.role != Role.admin:
        request.app.state.checkin_rate.check(user.sub)
    body = await check_in_body(request)
    service: CheckinService = request.app.state.service
    answer = await service.check_in(
        actor(user),
        body.resident_id,
        body.temperature_c,
        body.symptoms,
        body.channel,
        body.date,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return Response(pydantic_core.to_json(answer), status.HTTP_201_CREATED, media_type="application/json")


router.add_api_route(
    "/checkins",
    submit_checkin,
    methods=["POST"],
    status_code=status.HTTP_201_CREATED,
    response_model=CheckInOut,
    tags=["check-ins"],
    openapi_extra={**BEARER_AUTH, "requestBody": CHECK_IN_BODY, "parameters": [IDEMPOTENCY_KEY_HEADER]},
    route_class_override=DirectRoute,
)


# -- residents ----------------------------------------------------------------------------


class ResidentIn(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    phone: str
    community_id: str | None = None
    grid_id: str
    building_id: str
    unit: str
    room: str
    tags: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=20)
    lat: float | None = None
    lon: float | None = None
    registered_on: dt.date | None = Field(default=None, description="from the community's register; default today")
    household: str | None = Field(
        default=None,
        max_length=40,
        description="the register's household when it is not the room: `unit-room` joins that room's household, "
        "another label (letters, digits, - or _) is a household of its own in the building",
    )


class ResidentOut(BaseModel):
    resident_id: str
    name: str
    phone: str
    community_id: str
    grid_id: str
    building_id: str
    unit: str
    room: str
    tags: list[str]
    lat: float | None
    lon: float | None
    household_id: str | None
    registered_at: datetime


def _may_manage(user: Principal, grid_id: str, building_id: str) -> bool:
    return user.can_see_grid(grid_id) or user.can_act_for_building(building_id)


@router.post("/residents", status_code=status.HTTP_201_CREATED, response_model=ResidentOut, tags=["residents"])
async def register_resident(body: ResidentIn, user: Registrar, service: Service):
    """Register one resident; emits `ResidentRegistered`. 409 if already registered."""
    ensure_scope(_may_manage(user, body.grid_id, body.building_id), "you cannot register residents there")
    draft = domain.draft_resident(
        **body.model_dump(exclude={"community_id"}),
        community_id=body.community_id or service.settings.default_community_id,
        today=service.today(),
    )
    return await service.register(draft)


class ImportJobOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    file: str
    rows_total: int
    rows_done: int
    imported: int
    unchanged: int
    rejected: list[dict]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _job_answer(job) -> dict:
    return {**job.model_dump(exclude={"filename", "submitted_by", "updated_at"}), "file": job.filename}


Importer = Annotated[Principal, Depends(require(Role.command, Role.grid_worker))]


@router.post(
    "/residents/import",
    tags=["residents"],
    responses={202: {"model": ImportJobOut, "description": "with `Prefer: respond-async`: the job, at `Location`"}},
)
async def import_residents(
    request: Request,
    response: Response,
    user: Importer,
    service: Service,
    file: Annotated[
        UploadFile,
        File(
            description="CSV or XLSX: 姓名/name, 楼栋-单元-房号/address, 电话/phone, 网格/grid, 标签/tags, 纬度/lat, 经度/lon"
        ),
    ],
    prefer: Annotated[
        str | None, Header(description="`respond-async` (RFC 7240): answer 202 with a job at once")
    ] = None,
) -> dict:
    """Import a spreadsheet. Valid rows are imported; every rejected row is reported with
    its row number and reason; importing the same file again changes nothing. With
    `Prefer: respond-async` the answer is 202 and a job (`Location: /imports/{job_id}`)
    that counts rows done, imported, unchanged and rejected as it goes."""
    if user.role != Role.admin:
        request.app.state.import_rate.check(user.sub)
    content = await file.read()  # the body limit (CHECKIN_IMPORT_MAX_BYTES) has bounded it
    settings = service.settings
    bounds = importing.Bounds(
        settings.import_max_rows, settings.import_xlsx_max_expanded_bytes, settings.import_xlsx_max_ratio
    )
    rows = importing.read_rows(file.filename or "", content, bounds)
    # Read whole before saving anything: a file refused half-way imports nothing. A large
    # workbook reads for seconds: not on the event loop.
    read = await asyncio.to_thread(list, rows)
    allowed_grids = None if user.is_staff else set(user.grid_ids)
    if _prefers_async(prefer):
        job = await service.start_import(file.filename or "", read, allowed_grids, user.sub)
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = str(request.url_for("import_job", job_id=job.job_id).path)
        response.headers["Preference-Applied"] = "respond-async"
        return _job_answer(job)
    report = await service.import_residents(read, allowed_grids=allowed_grids)
    return {
        "file": file.filename,
        "total": report.total,
        "imported": report.imported,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "rejected_total": report.rejected_total,
    }


def _prefers_async(prefer: str | None) -> bool:
    """Whether a Prefer header (RFC 7240: comma-separated preferences, parameters after `;`) asks respond-async."""
    return any(p.split(";")[0].split("=")[0].strip().lower() == "respond-async" for p in (prefer or "").split(","))


@router.get("/imports/{job_id}", response_model=ImportJobOut, tags=["residents"])
async def import_job(job_id: str, user: Importer, service: Service) -> dict:
    """How far an import job got; its submitter's (or staff's) only."""
    return _job_answer(await service.import_job(job_id, user.sub, user.is_staff))


@router.get("/residents/{resident_id}", response_model=ResidentOut, tags=["residents"])
async def get_resident(resident_id: str, user: CurrentUser, service: Service):
    resident = await service.resident(resident_id)
    if not domain.may_act_for(actor(user), resident_id, resident.building_id, resident.grid_id):
        raise domain.unknown_resident(resident_id)
    return resident


Admin = Annotated[Principal, Depends(require(Role.admin))]


class ErasureServiceOut(BaseModel):
    service: str
    confirmed: bool
    erased_at: datetime | None
    records: dict[str, int]


class ErasureOut(BaseModel):
    resident_id: str
    erasure_id: str
    requested_by: str
    requested_at: datetime
    complete: bool
    services: list[ErasureServiceOut]


@router.post(
    "/residents/{resident_id}/erase",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ErasureOut,
    tags=["privacy"],
)
async def erase_resident(resident_id: str, request: Request, response: Response, user: Admin, service: Service):
    """Erase a resident (admins only): check-in deletes them, their check-ins and history at
    once and publishes `ResidentErased`; every service holding their data erases it and
    confirms. The answer, like GET `Location`, lists who has confirmed so far. Asking again
    answers the same erasure."""
    erasure = await service.erase(resident_id, user.sub)
    response.headers["Location"] = str(request.url_for("resident_erasure", resident_id=resident_id).path)
    return erasure


@router.get("/residents/{resident_id}/erasure", response_model=ErasureOut, tags=["privacy"])
async def resident_erasure(resident_id: str, _: Admin, service: Service):
    """A resident's erasure and which services have confirmed it (admins only)."""
    return await service.erasure(resident_id)


class AbsenceIn(RequestModel):
    from_date: date
    to_date: date
    reason: Literal["away", "hospitalised"]


@router.post("/residents/{resident_id}/absences", status_code=status.HTTP_201_CREATED, tags=["residents"])
async def record_absence(resident_id: str, body: AbsenceIn, user: Registrar, service: Service) -> dict:
    """Mark a resident away or in hospital: not expected to check in, not swept as missed."""
    resident = await service.resident(resident_id)
    if not _may_manage(user, resident.grid_id, resident.building_id):
        raise domain.unknown_resident(resident_id)
    absence = await service.record_absence(resident_id, body.from_date, body.to_date, body.reason, user.sub)
    return absence.model_dump()


class SweepIn(RequestModel):
    date: date


@router.post("/sweeps", tags=["check-ins"])
async def sweep(body: SweepIn, _: Staff, service: Service) -> dict:
    """Find who missed `date`'s check-in and emit `CheckInMissed` for each. Idempotent."""
    result = await service.sweep(body.date)
    return {"date": result.date, "missed": result.missed, "total_missed": result.total_missed}


def _grids(user: Principal, grid_id: str | None) -> list[str] | None:
    """The grids a request may read: None means all (staff)."""
    if user.is_staff:
        return [grid_id] if grid_id else None
    if user.role != Role.grid_worker:
        ensure_scope(False, "only grid workers, building leads and command staff read follow-ups and completion")
    if grid_id:
        ensure_scope(grid_id in user.grid_ids, f"grid {grid_id} is not one of your grids")
        return [grid_id]
    return list(user.grid_ids)


@router.get("/followups", tags=["check-ins"])
async def followups(
    request: Request,
    user: CurrentUser,
    service: Service,
    grid_id: str | None = None,
    building_id: str | None = None,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> dict:
    """The short list a grid worker calls instead of hundreds of households. A building lead
    gets their buildings' list without health details: `needs_attention` stands for them."""
    day = day or service.today()
    if user.role == Role.building_lead:
        buildings = service.buildings_of_lead(user.building_ids, building_id)
        items = domain.for_building_lead(await service.followups(day, building_ids=buildings))
        await _read_health(request, user, service, "followups", ",".join(buildings)[:160], items)
        return {"date": day, "building_ids": buildings, "count": len(items), "followups": items}
    grids = _grids(user, grid_id)
    if grids is None:
        raise Invalid("give grid_id: the follow-up list is per grid")
    items = await service.followups(day, grid_ids=grids)
    if building_id is not None:
        items = [item for item in items if item["building_id"] == building_id]
    await _read_health(request, user, service, "followups", ",".join(grids)[:160], items)
    return {"date": day, "grid_ids": grids, "count": len(items), "followups": items}


async def _read_health(
    request: Request, user: Principal, service: CheckinService, record: str, record_id: str, people: list[dict]
) -> None:
    """Write down who read these residents' health-related records (docs/privacy.md)."""
    if people:
        ids = [p.get("resident_id") for p in people]
        await service.access_log.record(user, record, route_of(request), record_id=record_id, resident_ids=ids)


@router.get("/buildings", tags=["households"])
async def buildings(user: CurrentUser, service: Service, grid_id: str | None = None) -> list[dict]:
    """The register's buildings with their grid, how many residents and where (for maps):
    staff see every grid, a grid worker their own."""
    return await service.buildings(_grids(user, grid_id))


@router.get("/stats/completion", tags=["check-ins"])
async def completion(
    user: CurrentUser,
    service: Service,
    day: Annotated[date | None, Query(alias="date")] = None,
    by: Literal["building", "grid"] = "building",
    grid_id: str | None = None,
    building_id: str | None = None,
) -> dict:
    """Expected and checked-in residents per building or grid. A building lead reads their
    own buildings, by building."""
    day = day or service.today()
    if user.role == Role.building_lead:
        ensure_scope(by == "building", "building leads read completion by building")
        rows = await service.completion(day, by, None, service.buildings_of_lead(user.building_ids, building_id))
    else:
        rows = await service.completion(day, by, _grids(user, grid_id), None if building_id is None else [building_id])
    expected = sum(r["expected"] for r in rows)
    done = sum(r["checked_in"] for r in rows)
    return {
        "date": day,
        "by": by,
        "expected": expected,
        "checked_in": done,
        "rate": domain.completion_rate(done, expected),
        "rows": rows,
    }


# -- sampling rounds ----------------------------------------------------------------------


class RoundIn(RequestModel):
    round_id: str | None = None
    name: str
    building_ids: list[str] = Field(min_length=1, max_length=500)
    deadline: AwareDatetime
    min_completion_rate: float | None = Field(default=None, gt=0, le=1)


class SamplesIn(RequestModel):
    resident_ids: list[str] = Field(min_length=1, max_length=5000)


@router.post("/sampling/rounds", status_code=status.HTTP_201_CREATED, tags=["sampling"])
async def open_round(body: RoundIn, _: Staff, service: Service) -> dict:
    """Open a sampling round (核酸) over buildings with a deadline."""
    sampling = await service.open_round(
        body.name, body.building_ids, body.deadline, body.min_completion_rate, body.round_id
    )
    return sampling.model_dump()


@router.post("/sampling/rounds/{round_id}/samples", tags=["sampling"])
async def record_samples(round_id: str, body: SamplesIn, user: Registrar, service: Service) -> dict:
    return await service.record_samples(round_id, body.resident_ids, actor(user))


@router.get("/sampling/rounds", tags=["sampling"])
async def latest_rounds(_: Staff, service: Service, limit: Annotated[int, Query(ge=1, le=50)] = 5) -> list[dict]:
    """The latest sampling rounds, newest first, each with its completion by building."""
    return await service.sampling_rounds(limit)


@router.get("/sampling/rounds/{round_id}", tags=["sampling"])
async def round_status(round_id: str, _: Registrar, service: Service) -> dict:
    return await service.round_status(round_id)


@router.post("/sampling/evaluate", tags=["sampling"])
async def evaluate(_: Staff, service: Service) -> dict:
    """Evaluate rounds past their deadline now (the job does it periodically)."""
    return {"lagging_flagged": await service.evaluate_rounds()}


# -- households ---------------------------------------------------------------------------


@router.get("/households", tags=["households"])
async def households_in_building(
    request: Request,
    user: CurrentUser,
    service: Service,
    building_id: str,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> dict:
    """A building's households, each member with today's status (checked_in, needs_attention,
    missing, away): for the building's lead, the grid's worker and staff. No temperature,
    symptom or health tag for a lead."""
    answer = await Households(service.runtime).in_building(user, building_id, day or service.today())
    await _read_household_health(request, user, service, building_id, answer["households"])
    return answer


async def _read_household_health(
    request: Request, user: Principal, service: CheckinService, record_id: str, households: list[dict]
) -> None:
    """A household answer with temperatures or symptoms in it is a read of check-ins."""
    shown = [m for h in households for m in h["members"] if "temperature_c" in m]
    await _read_health(request, user, service, "checkins", record_id, shown)


@router.get("/households/{household_id}", tags=["households"])
async def household(
    request: Request,
    household_id: str,
    user: CurrentUser,
    service: Service,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> dict:
    """A household (`H.<building>.<unit>.<room>`, or the household of a resident id) with
    each member's check-in status today: for the household's own session, the building's
    lead, the grid's worker and staff."""
    households = Households(service.runtime)
    answer = await households.household(user, await households.resolve(household_id), day or service.today())
    await _read_household_health(request, user, service, answer["household_id"], [answer])
    return answer
