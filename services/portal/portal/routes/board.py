"""The command center's desktop workbench (防疫指挥中心): the board of tickets, updated live;
a ticket's page with its actions; the daily meeting (每日例会), where a decision becomes a
ticket; and the heat map with the decisions its figures suggest.

Every read and action is a call to command's API as the signed-in person (command scopes
what it shows); the portal only arranges the answers on the page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from common.auth import Role
from portal import command_center as cc
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import (
    _SignIn,
    message_page,
    portal_of,
    redirect,
    render,
    same_origin,
    services_of,
    session_or_none,
    translator,
)

router = APIRouter()
STAFF = (Role.command.value, Role.admin.value)
ACTIONS = ("acknowledge", "resolve", "reassign", "escalate", "note")
COMMAND_ROUTE = {"escalate": "reassign", "note": "notes"}  # command's route for each action, where it differs
PRIORITIES = ("low", "normal", "high", "urgent")


async def board_session(request: Request) -> PortalSession | None:
    """The session of command staff; None for anyone else signed in (their page says 403)."""
    session = await session_or_none(request)
    if session is None:
        raise _SignIn()
    return session if session.role in STAFF else None


BoardSession = Annotated[PortalSession | None, Depends(board_session)]


def _forbidden(request: Request) -> HTMLResponse:
    return message_page(request, "errors.forbidden", 403)


def _refused(exc: ServiceError) -> str:
    """What the page says when command refuses: the stage moved on (409), the form's content
    (422), or not allowed (403/404); command's own words stay in its answer, not in the URL."""
    return {409: "board.error.stage", 422: "board.error.invalid"}.get(exc.status_code, "board.error.refused")


def _shown(error: str | None) -> str | None:
    return error if error and error.startswith("board.error.") else None  # only our own texts


async def _command(request: Request, session: PortalSession, method: str, path: str, **kwargs: Any) -> Any:
    return await services_of(request).call(session, "command", method, path, **kwargs)


async def _directory(request: Request, session: PortalSession) -> tuple[list[dict], dict[str, str]]:
    people = await _command(request, session, "GET", "/directory/people")
    departments = await _command(request, session, "GET", "/directory/departments")
    return [p for p in people if p.get("active", True)], {d["department_id"]: d["name"] for d in departments}


def _tz(request: Request) -> ZoneInfo:
    """The community's time zone (FIRSTLINE_TIMEZONE): deadlines are typed and read in it."""
    return request.app.state.settings.tz


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    tz = _tz(request)

    def at(moment: str | datetime | None) -> str:
        if moment is None:
            return ""
        value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
        return value.astimezone(tz).strftime("%m-%d %H:%M")

    return render(request, template, at=at, stages=cc.BOARD_STAGES, **context)


# -- the board ------------------------------------------------------------------------------


def _filters(department: str | None, owner: str | None, kind: str | None, overdue: str | None) -> dict[str, str]:
    chosen = {"department": department, "owner": owner, "kind": kind, "overdue": "true" if overdue else None}
    return {k: v for k, v in chosen.items() if v}


async def _board(request: Request, session: PortalSession, filters: dict[str, str]) -> dict[str, Any]:
    tickets = await _command(request, session, "GET", "/tickets", params={"stage": "open", "limit": 500, **filters})
    people, departments = await _directory(request, session)
    return {
        "columns": cc.columns(tickets),
        "count": len(tickets),
        "overdue_count": sum(1 for t in tickets if t.get("overdue")),
        "people": people,
        "names": {p["person_id"]: p["name"] for p in people},
        "departments": departments,
        "filters": filters,
        "query": urlencode(filters),
    }


@router.get("/board", response_class=HTMLResponse, include_in_schema=False)
async def board(
    request: Request,
    session: BoardSession,
    department: str | None = None,
    owner: str | None = None,
    kind: str | None = None,
    overdue: str | None = None,
):
    if session is None:
        return _forbidden(request)
    filters = _filters(department, owner, kind, overdue)
    live = "/board/events" if request.app.state.live is not None else None
    return _page(request, "board.html", live_board=live, **await _board(request, session, filters))


@router.get("/board/columns", response_class=HTMLResponse, include_in_schema=False)
async def board_columns(
    request: Request,
    session: BoardSession,
    department: str | None = None,
    owner: str | None = None,
    kind: str | None = None,
    overdue: str | None = None,
):
    """The board's columns alone: what the page's script swaps in when a ticket changes."""
    if session is None:
        return _forbidden(request)
    filters = _filters(department, owner, kind, overdue)
    return _page(request, "board_columns.html", **await _board(request, session, filters))


@router.get("/board/events", include_in_schema=False)
async def board_events(request: Request):
    """Server-sent events `ticket` (a ticket id and what happened to it) for command staff."""
    session = await session_or_none(request)
    if session is None or session.role not in STAFF:
        return Response(status_code=401 if session is None else 403)
    feed = request.app.state.live
    if feed is None:
        return Response(status_code=204)  # live updates are off: the script stops asking

    async def stream() -> AsyncIterator[str]:
        async with feed.watch_tickets() as queue:
            yield "retry: 3000\nevent: ready\ndata: {}\n\n"  # the board is listening from here on
            while not await request.is_disconnected():
                try:
                    ticket_id, change = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                yield f"event: ticket\ndata: {json.dumps({'ticket_id': ticket_id, 'change': change})}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


# -- a ticket -------------------------------------------------------------------------------


@router.get("/board/tickets/{ticket_id}", response_class=HTMLResponse, include_in_schema=False)
async def ticket_page(
    ticket_id: str, request: Request, session: BoardSession, done: str | None = None, error: str | None = None
):
    if session is None:
        return _forbidden(request)
    ticket = await _command(request, session, "GET", f"/tickets/{quote(ticket_id, safe='')}")
    people, departments = await _directory(request, session)
    names = {p["person_id"]: p["name"] for p in people}
    owner = next((p for p in people if p["person_id"] == ticket["owner"]), None)
    supervisor = owner.get("supervisor_id") if owner else None
    return _page(
        request,
        "board_ticket.html",
        ticket=ticket,
        people=people,
        names=names,
        departments=departments,
        supervisor=supervisor if supervisor in names else None,
        done=done,
        error=_shown(error),
    )


@router.post("/board/tickets/{ticket_id}/{action}", include_in_schema=False)
async def ticket_action(
    ticket_id: str,
    action: str,
    request: Request,
    session: BoardSession,
    note: Annotated[str, Form(max_length=2000)] = "",
    owner: Annotated[str, Form(max_length=100)] = "",
):
    """acknowledge (with a note), resolve (what was done), reassign (to a person, with the
    reason), escalate (to the owner's supervisor in command's directory, with the reason),
    note (a line in the history)."""
    if session is None:
        return _forbidden(request)
    same_origin(request)
    back = f"/board/tickets/{quote(ticket_id, safe='')}"
    if action not in ACTIONS:
        return message_page(request, "board.not_found", 404)
    path = f"{back.removeprefix('/board')}/{COMMAND_ROUTE.get(action, action)}"
    note = note.strip()
    if action == "acknowledge":
        body: dict[str, Any] = {"note": note or None}
    elif action == "resolve":
        if not note:
            return redirect(f"{back}?error=board.error.resolution_needed")
        body = {"resolution": note}
    elif action == "note":
        if not note:
            return redirect(f"{back}?error=board.error.note_needed")
        body = {"note": note}
    else:
        if action == "escalate":
            ticket = await _command(request, session, "GET", back.removeprefix("/board"))
            people, _ = await _directory(request, session)
            current = next((p for p in people if p["person_id"] == ticket["owner"]), None)
            owner = (current or {}).get("supervisor_id") or ""
            if not owner:
                return redirect(f"{back}?error=board.error.no_supervisor")
            note = f"升级 escalated: {note}" if note else "升级 escalated"
        if not owner:
            return redirect(f"{back}?error=board.error.owner_needed")
        body = {"owner": owner, "reason": note or None}
    try:
        await _command(request, session, "POST", path, json=body)
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return redirect(f"{back}?error={_refused(exc)}")
    return redirect(f"{back}?done={action}")


# -- the daily meeting ------------------------------------------------------------------------


@router.get("/board/meeting", response_class=HTMLResponse, include_in_schema=False)
async def meeting(
    request: Request,
    session: BoardSession,
    done: str | None = None,
    error: str | None = None,
    draft: str = "",  # a decision the heat map's prompts suggest
    building_id: str = "",
):
    if session is None:
        return _forbidden(request)
    agenda = await _command(request, session, "GET", "/agenda")
    people, departments = await _directory(request, session)
    now = portal_of(request).clock.now().astimezone(_tz(request))
    tomorrow = now.replace(hour=18, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return _page(
        request,
        "board_meeting.html",
        agenda=agenda,
        figures=agenda["figures"],
        people=people,
        departments=departments,
        priorities=PRIORITIES,
        default_deadline=tomorrow.strftime("%Y-%m-%dT%H:%M"),
        draft=draft[:500],
        building_id=building_id[:40],
        done=done,
        error=_shown(error),
    )


@router.post("/board/meeting/decisions", include_in_schema=False)
async def record_decision(
    request: Request,
    session: BoardSession,
    description: Annotated[str, Form(max_length=2000)] = "",
    owner: Annotated[str, Form(max_length=100)] = "",
    deadline: Annotated[str, Form(max_length=40)] = "",
    priority: Annotated[str, Form(max_length=10)] = "normal",
    building_id: Annotated[str, Form(max_length=40)] = "",
):
    """A decision of the meeting, in one step: a ticket with its owner and deadline."""
    if session is None:
        return _forbidden(request)
    same_origin(request)
    if not description.strip() or not owner:
        return redirect("/board/meeting?error=board.error.decision_needed")
    try:
        resolve_by = datetime.fromisoformat(deadline)
    except ValueError:
        return redirect("/board/meeting?error=board.error.deadline_needed")
    resolve_by = (resolve_by if resolve_by.tzinfo else resolve_by.replace(tzinfo=_tz(request))).astimezone(UTC)
    body = {
        "category": "meeting_decision",
        "description": description.strip(),
        "owner": owner,
        "resolve_by": resolve_by.isoformat(),
        "priority": priority if priority in PRIORITIES else None,
        "building_id": building_id.strip() or None,
    }
    try:
        ticket = await _command(request, session, "POST", "/tickets", json=body)
    except ServiceError as exc:
        if exc.status_code >= 500:
            raise
        return redirect(f"/board/meeting?error={_refused(exc)}")
    return redirect(f"/board/meeting?done={quote(ticket['ticket_id'])}#decisions")


# -- the heat map -------------------------------------------------------------------------------


@router.get("/board/heatmap", response_class=HTMLResponse, include_in_schema=False)
async def heatmap(request: Request, session: BoardSession, window: str = "24h", kind: str = ""):
    if session is None:
        return _forbidden(request)
    window = window if window in cc.WINDOWS else "24h"
    kind = kind if kind in cc.HEAT_KINDS else ""
    since = portal_of(request).clock.now() - cc.WINDOWS[window]
    params = {"since": since.isoformat(), **({"kind": kind} if kind else {})}
    cells = await _command(request, session, "GET", "/heatmap", params=params)
    # the register's buildings (all of them, whoever is expected today), and today's completion
    services = services_of(request)
    register = await services.call(session, "checkin", "GET", "/buildings")
    completion = await services.call(session, "checkin", "GET", "/stats/completion", params={"by": "building"})
    rates = {row["building_id"]: row.get("rate") for row in completion["rows"]}
    buildings = [
        {"building_id": b["building_id"], "lat": b["lat"], "lon": b["lon"], "rate": rates.get(b["building_id"])}
        for b in register
        if b.get("lat") is not None and b.get("lon") is not None
    ]
    signals = []
    for signal_kind in ("demand_surge", "sampling_lagging"):
        signals += await _command(
            request, session, "GET", "/tickets", params={"stage": "open", "kind": signal_kind, "limit": 50}
        )
    t = translator(request)
    shape = {
        "outline": cc.outline((b["lat"], b["lon"]) for b in buildings),
        "buildings": buildings,
        "cells": cells["features"],
    }
    return _page(
        request,
        "board_heatmap.html",
        window=window,
        windows=tuple(cc.WINDOWS),
        kind=kind,
        kinds=cc.HEAT_KINDS,
        cells=cells["features"],
        buildings=buildings,
        prompts=[_prompt(t, p) for p in cc.prompts(signals)],
        map_data=json.dumps(shape, ensure_ascii=False).replace("</", "<\\/"),
    )


def _prompt(t, prompt: cc.Prompt) -> dict[str, Any]:
    values = dict(prompt.values)
    if "category" in values:
        values["category"] = t(f"category.{values['category']}")
    return {
        "text": t(prompt.key, **values),
        "draft": t(prompt.key + ".draft", **values),
        "ticket_id": prompt.ticket_id,
        "building_id": prompt.building_id,
    }
