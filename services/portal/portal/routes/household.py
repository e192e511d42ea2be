"""A household at home: check-ins, requests for help and feedback."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from common.errors import Invalid
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import (
    CATEGORIES,
    QUICK_TEMPERATURES,
    SYMPTOMS,
    MaybeSession,
    _SignIn,
    live_url,
    message_page,
    redirect,
    render,
    same_origin,
    services_of,
    session_or_none,
    translator,
)

router = APIRouter()


async def household_session(request: Request) -> PortalSession:
    session = await session_or_none(request)
    if session is None or not session.household_id:
        raise _SignIn()
    return session


HouseholdSession = Annotated[PortalSession, Depends(household_session)]


async def _household(request: Request, session: PortalSession) -> dict:
    return await services_of(request).household(session, session.household_id)


def _members(household: dict) -> dict[str, dict]:
    return {m["resident_id"]: m for m in household["members"]}


@router.get("/home", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request, session: HouseholdSession, done: str | None = None, error: str | None = None):
    services = services_of(request)
    household = await _household(request, session)
    hours: float | None = 0.0
    try:
        for member in household["members"]:
            balance = await services.balance(session, member["resident_id"])
            hours += float((balance or {}).get("hours", 0) or 0)
    except ServiceError:
        hours = None  # the time bank is away: the page still serves the check-in
    return render(
        request,
        "home.html",
        household=household,
        symptoms=SYMPTOMS,
        temperatures=QUICK_TEMPERATURES,
        missing=[m for m in household["members"] if m["status"] == "missing"],
        hours=hours,
        done=done,
        error=error,
        key=uuid.uuid4().hex,
        live=live_url(request),
    )


class CheckInIn(BaseModel):
    resident_id: str
    temperature_c: float = Field(ge=30, le=45)
    symptoms: list[str] = Field(default_factory=list, max_length=10)


async def _check_in(request: Request, session: PortalSession, body: CheckInIn, key: str | None) -> dict:
    """A check-in for a member of the session's household, or (a lead) for a neighbour."""
    services = services_of(request)
    if session.household_id:
        if body.resident_id not in await services.members(session):
            raise ServiceError("portal", 403, "not a member of this household")
        return await services.check_in(
            session, body.resident_id, body.temperature_c, body.symptoms, key, as_member=True
        )
    return await services.check_in(session, body.resident_id, body.temperature_c, body.symptoms, key, as_member=False)


@router.post("/api/checkins", tags=["pages"])
async def api_check_in(body: CheckInIn, request: Request, session: MaybeSession) -> JSONResponse:
    """The pages' script posts check-ins here (also the ones queued while offline); the
    `Idempotency-Key` goes on to the check-in service, so a repeat changes nothing."""
    same_origin(request)
    if session is None:
        return JSONResponse({"detail": translator(request)("signin.needed")}, status_code=401)
    try:
        answer = await _check_in(request, session, body, request.headers.get("idempotency-key"))
    except ServiceError as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code if exc.status_code < 500 else 502)
    return JSONResponse(
        {
            "resident_id": answer["resident_id"],
            "date": answer["date"],
            "status": "needs_attention" if answer["anomaly"] else "checked_in",
        },
        status_code=201,
    )


def _refusal(exc: ServiceError) -> str:
    """What a page says when check-in refuses a reading: in the page's words, not the API's."""
    return "checkin.reading_refused" if exc.service == "checkin" and exc.status_code == 422 else exc.detail


def _reading(temperature: str, symptoms: list[str], none: str | None) -> tuple[float, list[str]]:
    try:
        value = float(temperature.replace(",", "."))
    except ValueError:
        raise Invalid("checkin.temperature_needed") from None
    return value, [] if none else symptoms


@router.post("/home/checkins", include_in_schema=False)
async def home_check_in(
    request: Request,
    session: HouseholdSession,
    resident_id: Annotated[str, Form()],
    temperature_c: Annotated[str, Form()] = "",
    symptoms: Annotated[list[str], Form()] = [],  # noqa: B006
    none: Annotated[str | None, Form()] = None,
    key: Annotated[str | None, Form()] = None,
):
    same_origin(request)
    try:
        value, chosen = _reading(temperature_c, symptoms, none)
        await _check_in(request, session, CheckInIn(resident_id=resident_id, temperature_c=value, symptoms=chosen), key)
    except (Invalid, ValueError):
        return redirect("/home?error=checkin.temperature_needed")
    except ServiceError as exc:
        return redirect(f"/home?error={quote(_refusal(exc))}")
    return redirect(f"/home?done={quote(resident_id)}")


# -- requests and feedback --------------------------------------------------------------


async def _catalog(request: Request, session: PortalSession) -> list[dict]:
    try:
        return [i for i in await services_of(request).items(session) if i.get("category") == "medicine"]
    except ServiceError:
        return []


@router.get("/home/request", response_class=HTMLResponse, include_in_schema=False)
async def request_form(request: Request, session: HouseholdSession, error: str | None = None):
    household = await _household(request, session)
    return render(
        request,
        "request.html",
        members=household["members"],
        categories=CATEGORIES,
        medicines=await _catalog(request, session),
        action="/home/requests",
        error=error,
    )


async def _raise(
    request: Request,
    session: PortalSession,
    resident_id: str,
    category: str,
    details: str,
    item_id: str,
    quantity: str,
    *,
    as_member: bool,
) -> None:
    if category not in CATEGORIES:
        raise ServiceError("portal", 422, "request.category_needed")
    items = []
    if category == "medicine" and item_id:
        try:
            items = [{"item_id": item_id, "quantity": max(1, int(quantity or "1"))}]
        except ValueError:
            raise ServiceError("portal", 422, "request.quantity_invalid") from None
    await services_of(request).raise_request(session, resident_id, category, details, items, as_member=as_member)


@router.post("/home/requests", include_in_schema=False)
async def home_raise(
    request: Request,
    session: HouseholdSession,
    resident_id: Annotated[str, Form()],
    category: Annotated[str, Form()] = "",
    details: Annotated[str, Form()] = "",
    item_id: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "1",
):
    same_origin(request)
    if resident_id not in _members(await _household(request, session)):
        return message_page(request, "errors.not_your_household", 403)
    try:
        await _raise(request, session, resident_id, category, details, item_id, quantity, as_member=True)
    except ServiceError as exc:
        return redirect(f"/home/request?error={quote(exc.detail)}")
    return redirect("/home/requests?raised=1")


@router.get("/home/requests", response_class=HTMLResponse, include_in_schema=False)
async def home_requests(request: Request, session: HouseholdSession, raised: int = 0, thanks: int = 0):
    services = services_of(request)
    household = await _household(request, session)
    names = {m["resident_id"]: m["name"] for m in household["members"]}
    requests, tickets = [], []
    for member_id in names:
        requests += await services.requests_of(session, member_id)
        with contextlib.suppress(ServiceError):
            tickets += [dict(t, resident_id=member_id) for t in await services.tickets_of(session, member_id)]
    requests.sort(key=lambda r: r["created_at"], reverse=True)
    return render(
        request, "requests.html", requests=requests, tickets=tickets, names=names, raised=raised, thanks=thanks
    )


@router.post("/home/feedback/{ticket_id}", include_in_schema=False)
async def home_feedback(
    ticket_id: str,
    request: Request,
    session: HouseholdSession,
    resident_id: Annotated[str, Form()],
    satisfaction: Annotated[int, Form(ge=1, le=5)],
    comment: Annotated[str, Form()] = "",
):
    same_origin(request)
    if resident_id not in _members(await _household(request, session)):
        return message_page(request, "errors.not_your_household", 403)
    try:
        await services_of(request).feedback(session, resident_id, ticket_id, satisfaction, comment)
    except ServiceError as exc:
        return message_page(
            request, "errors.service", exc.status_code if exc.status_code < 500 else 502, detail=exc.detail
        )
    return redirect("/home/requests?thanks=1")
