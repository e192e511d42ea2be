"""The dispatcher's page: the queue, planning the runs of a slot (from a depot of their
choosing), what could not be planned and why (dispatch gives the reason per request), and
a request given to a volunteer by hand."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from common.auth import Role
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import _SignIn, portal_of, redirect, render, same_origin, services_of, session_or_none

router = APIRouter()
ROLES = (Role.dispatcher.value, Role.command.value, Role.admin.value)
SLOT_HOURS = 3
SHOWN = 50  # requests of the queue on the page


async def dispatcher_session(request: Request) -> PortalSession:
    session = await session_or_none(request)
    if session is None or session.household_id:
        raise _SignIn()
    if session.role not in ROLES:
        raise ServiceError("portal", 403, "ops.forbidden")
    return session


Dispatcher = Annotated[PortalSession, Depends(dispatcher_session)]


async def _page(request: Request, session: PortalSession, status_code: int = 200, **context):
    services = services_of(request)
    tz = request.app.state.settings.tz
    queue = await services.call(session, "dispatch", "GET", "/requests", params={"status": "pending", "limit": SHOWN})
    volunteers = await services.call(session, "dispatch", "GET", "/volunteers", params={"limit": 500})
    try:
        depots = await services.call(session, "supplies", "GET", "/depots", params={"limit": 500})
    except ServiceError:
        depots = []  # supplies away: plan from dispatch's own depot
    now = portal_of(request).clock.now().astimezone(tz)
    start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return render(
        request,
        "ops_dispatch.html",
        status_code,
        queue=queue,
        volunteers=volunteers,
        depots=depots,
        slot={
            "date": start.date().isoformat(),
            "start": start.strftime("%H:%M"),
            "end": (start + dt.timedelta(hours=SLOT_HOURS)).strftime("%H:%M"),
        },
        local=lambda value: dt.datetime.fromisoformat(value).astimezone(tz).strftime("%m-%d %H:%M") if value else "",
        **context,
    )


@router.get("/dispatch", response_class=HTMLResponse, include_in_schema=False)
async def dispatch_page(request: Request, session: Dispatcher, done: str | None = None, error: str | None = None):
    return await _page(request, session, done=done, error=error, plan=None)


@router.post("/dispatch/plan", response_class=HTMLResponse, include_in_schema=False)
async def plan_slot(
    request: Request,
    session: Dispatcher,
    date: Annotated[str, Form()],
    start: Annotated[str, Form()],
    end: Annotated[str, Form()],
    depot_id: Annotated[str, Form()] = "",
):
    """Plan the slot's runs; the answer's runs and its unplanned requests, each with why."""
    same_origin(request)
    tz = request.app.state.settings.tz
    try:
        day = dt.date.fromisoformat(date)
        slot_start = dt.datetime.combine(day, dt.time.fromisoformat(start), tz)
        slot_end = dt.datetime.combine(day, dt.time.fromisoformat(end), tz)
    except ValueError:
        return await _page(request, session, 422, error="ops.dispatch.slot_invalid", plan=None)
    if slot_end <= slot_start:
        slot_end += dt.timedelta(days=1)  # a slot past midnight
    body: dict = {"slot_start": slot_start.isoformat(), "slot_end": slot_end.isoformat()}
    services = services_of(request)
    if depot_id:
        depots = await services.call(session, "supplies", "GET", "/depots", params={"limit": 500})
        depot = next((d for d in depots if d["depot_id"] == depot_id), None)
        if depot is None:
            return await _page(request, session, 422, error="ops.dispatch.depot_unknown", plan=None)
        body.update(depot_id=depot_id, depot_lat=depot["lat"], depot_lon=depot["lon"])
    try:
        plan = await services.call(session, "dispatch", "POST", "/runs/plan", json=body)
    except ServiceError as exc:
        return await _page(
            request, session, exc.status_code if exc.status_code < 500 else 502, error=exc.detail, plan=None
        )
    unplanned = []
    for left in plan["unplanned"][:SHOWN]:
        try:
            detail = await services.call(session, "dispatch", "GET", f"/requests/{left['request_id']}")
        except ServiceError:
            detail = {}
        unplanned.append({**left, "request": detail})
    return await _page(request, session, plan=plan, unplanned=unplanned, done=None, error=None)


@router.post("/dispatch/requests/{request_id}/assign", include_in_schema=False)
async def assign_by_hand(
    request_id: str,
    request: Request,
    session: Dispatcher,
    volunteer_id: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
):
    same_origin(request)
    try:
        await services_of(request).call(
            session,
            "dispatch",
            "POST",
            f"/requests/{request_id}/assign",
            json={"volunteer_id": volunteer_id, "note": note.strip() or None},
        )
    except ServiceError as exc:
        return redirect(f"/dispatch?error={quote(exc.detail)}")
    return redirect("/dispatch?done=assigned")
