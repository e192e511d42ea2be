"""A partner desk (health 卫健, police 公安, property 物业): its inbox of tickets, exactly as its
partner topic tells them (command's `GET /partner/tickets`), acknowledge and resolve, and an
alert when an urgent ticket waits. The desk needs no Kafka consumer; the page asks again
every PORTAL_DESK_POLL_S seconds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse

from common.auth import Role
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import _SignIn, message_page, redirect, render, same_origin, services_of, session_or_none, translator

router = APIRouter()

AWAITING_RESPONSE = ("discovered", "reopened")


async def desk_session(request: Request) -> PortalSession:
    session = await session_or_none(request)
    if session is None:
        raise _SignIn()
    return session


DeskSession = Annotated[PortalSession, Depends(desk_session)]


def _is_desk(session: PortalSession) -> bool:
    return session.role == Role.partner.value and bool(session.department)


async def _inbox(request: Request, session: PortalSession, finished: bool = False) -> list[dict]:
    params = {"finished": "true"} if finished else None
    return await services_of(request).call(session, "command", "GET", "/partner/tickets", params=params)


def _urgent(entries: list[dict]) -> list[dict]:
    """Urgent tickets of the desk's own still waiting for someone to take them."""
    return [
        e
        for e in entries
        if e["data"]["priority"] == "urgent" and e["data"]["stage"] in AWAITING_RESPONSE and e["allowed"]
    ]


def _card(entry: dict, tz, now: datetime) -> dict:
    """The topic's data as the page shows it: deadlines in local time, passed ones marked."""
    data = entry["data"]
    respond_by = datetime.fromisoformat(data["respond_by"])
    resolve_by = datetime.fromisoformat(data["resolve_by"])
    due = respond_by if data["stage"] in AWAITING_RESPONSE else resolve_by
    return {
        **entry,
        "respond_by": respond_by.astimezone(tz).strftime("%m-%d %H:%M"),
        "resolve_by": resolve_by.astimezone(tz).strftime("%m-%d %H:%M"),
        "at": datetime.fromisoformat(data["at"]).astimezone(tz).strftime("%m-%d %H:%M"),
        "late": data["stage"] not in ("resolved", "closed") and now > due,
    }


@router.get("/desk", response_class=HTMLResponse, include_in_schema=False)
async def desk(
    request: Request, session: DeskSession, view: str = "open", done: str | None = None, error: str | None = None
):
    if not _is_desk(session):
        return message_page(request, "errors.forbidden", 403)
    finished = view == "done"
    entries = await _inbox(request, session, finished)
    settings = request.app.state.settings
    now = datetime.now(settings.tz)  # deadlines are wall-clock times
    return render(
        request,
        "desk.html",
        department=session.department,
        view="done" if finished else "open",
        tickets=[_card(e, settings.tz, now) for e in entries],
        urgent=[] if finished else _urgent(entries),
        poll_s=settings.desk_poll_s,
        done=done if done in ("acknowledged", "resolved") else None,
        error=error if error in ("desk.refused", "desk.resolution_needed") else None,
    )


@router.get("/desk/inbox.json", include_in_schema=False)
async def desk_poll(request: Request, session: DeskSession):
    """What the page's script asks every few seconds: the open tickets and the urgent ones waiting."""
    if not _is_desk(session):
        return JSONResponse({"detail": "only a partner desk has an inbox"}, status_code=403)
    entries = await _inbox(request, session)
    urgent = _urgent(entries)
    t = translator(request)
    return {
        "open": len(entries),
        "urgent": [e["data"]["ticket_id"] for e in urgent],
        "alert": t("desk.alert", count=len(urgent)) if urgent else "",
    }


@router.post("/desk/tickets/{ticket_id}/acknowledge", include_in_schema=False)
async def desk_acknowledge(ticket_id: str, request: Request, session: DeskSession):
    same_origin(request)
    if not _is_desk(session):
        return message_page(request, "errors.forbidden", 403)
    try:
        await services_of(request).call(session, "command", "POST", f"/tickets/{ticket_id}/acknowledge", json={})
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return redirect("/desk?error=desk.refused")  # taken by a colleague meanwhile, or not the desk's to take
    return redirect("/desk?done=acknowledged")


@router.post("/desk/tickets/{ticket_id}/resolve", include_in_schema=False)
async def desk_resolve(ticket_id: str, request: Request, session: DeskSession, resolution: Annotated[str, Form()] = ""):
    same_origin(request)
    if not _is_desk(session):
        return message_page(request, "errors.forbidden", 403)
    if not resolution.strip():
        return redirect("/desk?error=desk.resolution_needed")
    try:
        await services_of(request).call(
            session, "command", "POST", f"/tickets/{ticket_id}/resolve", json={"resolution": resolution.strip()}
        )
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return redirect("/desk?error=desk.refused")
    return redirect("/desk?done=resolved")
