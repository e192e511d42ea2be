"""A building lead: the building overview, check-ins and requests on a household's behalf,
live events, QR sheets, and who the community's notices have not reached yet."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from common.auth import Role
from common.errors import Invalid
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.routes.household import CheckInIn, _catalog, _check_in, _raise, _reading, _refusal
from portal.web import (
    CATEGORIES,
    QUICK_TEMPERATURES,
    SYMPTOMS,
    MaybeSession,
    _pdf,
    _SignIn,
    live_url,
    message_page,
    redirect,
    render,
    same_origin,
    services_of,
    session_or_none,
)

router = APIRouter()


async def lead_session(request: Request) -> PortalSession:
    session = await session_or_none(request)
    if session is None or session.role not in (Role.building_lead.value, Role.admin.value, Role.command.value):
        raise _SignIn()
    return session


LeadSession = Annotated[PortalSession, Depends(lead_session)]


def _building(session: PortalSession, building_id: str | None) -> str:
    if building_id:
        return building_id
    if session.building_ids:
        return session.building_ids[0]
    raise ServiceError("portal", 422, "lead.building_needed")


@router.get("/lead", response_class=HTMLResponse, include_in_schema=False)
async def lead(
    request: Request,
    session: LeadSession,
    building_id: str | None = None,
    done: str | None = None,
    error: str | None = None,
):
    building = await services_of(request).building(session, _building(session, building_id))
    members = [dict(m, room=h["room"], unit=h["unit"]) for h in building["households"] for m in h["members"]]
    return render(
        request,
        "lead.html",
        building=building,
        missing=[m for m in members if m["status"] == "missing"],
        symptoms=SYMPTOMS,
        temperatures=QUICK_TEMPERATURES,
        done=done,
        error=error,
        key=uuid.uuid4().hex,
        live=live_url(request),
        rate=round(100 * building["checked_in"] / building["expected"]) if building["expected"] else 100,
    )


@router.post("/lead/checkins", include_in_schema=False)
async def lead_check_in(
    request: Request,
    session: LeadSession,
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
        return redirect("/lead?error=checkin.temperature_needed")
    except ServiceError as exc:
        return redirect(f"/lead?error={quote(_refusal(exc))}")
    return redirect(f"/lead?done={quote(resident_id)}")


@router.get("/lead/request", response_class=HTMLResponse, include_in_schema=False)
async def lead_request_form(request: Request, session: LeadSession, error: str | None = None):
    building = await services_of(request).building(session, _building(session, None))
    members = [dict(m, room=h["room"]) for h in building["households"] for m in h["members"]]
    return render(
        request,
        "request.html",
        members=members,
        categories=CATEGORIES,
        medicines=await _catalog(request, session),
        action="/lead/requests",
        error=error,
    )


@router.post("/lead/requests", include_in_schema=False)
async def lead_raise(
    request: Request,
    session: LeadSession,
    resident_id: Annotated[str, Form()],
    category: Annotated[str, Form()] = "",
    details: Annotated[str, Form()] = "",
    item_id: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "1",
):
    same_origin(request)
    try:
        await _raise(request, session, resident_id, category, details, item_id, quantity, as_member=False)
    except ServiceError as exc:
        return redirect(f"/lead/request?error={quote(exc.detail)}")
    return redirect("/lead?done=request")


# -- live updates ------------------------------------------------------------------------


@router.get("/events", include_in_schema=False)
async def live_events(request: Request, session: MaybeSession):
    """Server-sent events: `checkin` with the resident and their new status, for the
    members of the session's household or the residents of the lead's building."""
    feed = request.app.state.live
    if session is None:
        return Response(status_code=401)
    if feed is None:
        return Response(status_code=204)  # live updates are off: the page's script stops asking
    services = services_of(request)
    if session.household_id:
        residents = await services.members(session)
    elif session.role == Role.building_lead.value:
        building = await services.building(session, _building(session, None))
        residents = frozenset(m["resident_id"] for h in building["households"] for m in h["members"])
    else:
        return Response(status_code=204)

    async def stream() -> AsyncIterator[str]:
        async with feed.watch(residents) as queue:
            yield "retry: 5000\n\n"
            while not await request.is_disconnected():
                try:
                    resident_id, new_status = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": still here\n\n"  # keeps proxies from closing a quiet stream
                    continue
                yield f"event: checkin\ndata: {json.dumps({'resident_id': resident_id, 'status': new_status})}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


# -- QR sheets --------------------------------------------


@router.get("/buildings/{building_id}/qr.pdf", include_in_schema=False)
async def qr_sheet_page(building_id: str, request: Request, session: MaybeSession):
    """The building's household QR codes, for an admin or that building's lead."""
    if session is None:
        return redirect("/")
    if not (
        session.role == Role.admin.value
        or (session.role == Role.building_lead.value and building_id in session.building_ids)
    ):
        return message_page(request, "errors.forbidden", 403)
    building = await services_of(request).building(session, building_id)
    return await _pdf(request, building)


# -- notices (宣传): who has not been reached -------------------------------------------------

NOTICES_SHOWN = 10


@router.get("/lead/notices", response_class=HTMLResponse, include_in_schema=False)
async def lead_notices(request: Request, session: LeadSession):
    """The latest notices that concern the lead's buildings, each with the households it
    has not reached yet (messaging decides what a lead may see: their own buildings)."""
    services = services_of(request)
    try:
        notices = await services.call(session, "messaging", "GET", "/notices", params={"limit": NOTICES_SHOWN})
        reaches = [
            await services.call(session, "messaging", "GET", f"/notices/{n['notice_id']}/reach") for n in notices
        ]
    except ServiceError:
        return render(request, "lead_notices.html", shown=None)
    shown = [(n, r) for n, r in zip(notices, reaches, strict=True) if r["households"]]
    return render(request, "lead_notices.html", shown=shown)
