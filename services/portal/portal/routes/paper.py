"""Paper: A4 pages to print (print CSS) and their PDFs (Debian's Chromium, Noto CJK fonts
embedded) for a building's check-in sheet, a grid worker's follow-up list, a volunteer's
route sheet, the meeting agenda and a building's monthly recognition board (光荣榜); and the
one screen where a building lead keys a filled check-in sheet back in.

Every page is `/paper/...`; the same path ending in `.pdf` is its PDF. The services decide
who may read what (a lead's building, a grid worker's grids, a volunteer's own run); a
page only refuses roles that have no such sheet at all.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from common.auth import Role
from portal import sheets
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import (
    SYMPTOMS,
    TEMPLATES,
    _SignIn,
    portal_of,
    render,
    same_origin,
    services_of,
    session_or_none,
    translator,
)

router = APIRouter()

# Who may open which sheet (the service behind it narrows it to their own buildings, grids, runs).
SHEET_ROLES = {
    "checkins": (Role.building_lead, Role.grid_worker, Role.command, Role.admin),
    "entry": (Role.building_lead, Role.command, Role.admin),
    "followups": (Role.grid_worker, Role.command, Role.admin),
    "route": (Role.volunteer, Role.dispatcher, Role.command, Role.admin),
    "agenda": (Role.command, Role.admin),
    "recognition": (Role.building_lead, Role.grid_worker, Role.command, Role.admin),
}
KEYING_AT_ONCE = 8  # check-ins of one sheet in flight together (check-in commits them as a group)


def _may(kind: str):
    async def dependency(request: Request) -> PortalSession:
        session = await session_or_none(request)
        if session is None or session.household_id:
            raise _SignIn()
        if session.role not in {r.value for r in SHEET_ROLES[kind]}:
            raise ServiceError("portal", 403, "paper.forbidden")
        return session

    return Depends(dependency)


async def _page(request: Request, template: str, pdf: bool, filename: str, **context: Any) -> Response:
    """The printable page, or (pdf) the same page printed by Chromium."""
    if not pdf:
        return render(request, template, printable=True, **context)
    t = translator(request)
    html = TEMPLATES.get_template(template).render(t=t, lang=t.lang, path=request.url.path, printable=False, **context)
    printed = await sheets.print_pdf(request.app.state.settings.chromium, html)
    return Response(
        printed,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _split(name: str) -> tuple[str, bool]:
    return (name[:-4], True) if name.endswith(".pdf") else (name, False)


def _day(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ServiceError("portal", 422, "paper.bad_date") from None


# -- a building's check-in sheet ----------------------------------------------------------


def row_code(secret: bytes, building_id: str, day: str, resident_id: str) -> str:
    """The code printed on a sheet's row: short, the same on the entry screen, and different
    on another day's sheet, so a row is keyed into the day it was filled for."""
    digest = hmac.new(secret, f"{building_id}|{day}|{resident_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest)[:4].decode()


async def _building(request: Request, session: PortalSession, building_id: str, day: dt.date | None) -> dict:
    params = {"building_id": building_id, **({"date": day.isoformat()} if day else {})}
    building = await services_of(request).call(session, "checkin", "GET", "/households", params=params)
    secret = portal_of(request).secret
    rows = []
    for household in building["households"]:
        for member in household["members"]:
            rows.append(
                {
                    **member,
                    "unit": household["unit"],
                    "room": household["room"],
                    "code": row_code(secret, building_id, str(building["date"]), member["resident_id"]),
                }
            )
    return {**building, "rows": rows}


@router.get("/paper/buildings/{building_id}/checkins", response_class=HTMLResponse, include_in_schema=False)
@router.get("/paper/buildings/{building_id}/checkins.pdf", include_in_schema=False)
async def checkin_sheet(
    building_id: str, request: Request, session: Annotated[PortalSession, _may("checkins")], date: str | None = None
):
    """One row per member: room, name, a code, the temperature to write and boxes to tick."""
    pdf = request.url.path.endswith(".pdf")
    building = await _building(request, session, building_id, _day(date))
    return await _page(
        request,
        "paper_checkin_sheet.html",
        pdf,
        f"checkins-{building_id}-{building['date']}.pdf",
        building=building,
        symptoms=SYMPTOMS,
        pdf_url=f"/paper/buildings/{building_id}/checkins.pdf?date={building['date']}",
    )


@router.get("/paper/buildings/{building_id}/checkins/entry", response_class=HTMLResponse, include_in_schema=False)
async def entry_form(
    building_id: str, request: Request, session: Annotated[PortalSession, _may("entry")], date: str | None = None
):
    building = await _building(request, session, building_id, _day(date))
    return render(request, "paper_entry.html", building=building, symptoms=SYMPTOMS, values={}, errors={}, done=None)


def _reading(form, resident_id: str) -> tuple[float | None, list[str], str | None]:
    """A row of the entry screen: (temperature, symptoms, error key) when ticked."""
    symptoms = [s for s in form.getlist(f"s.{resident_id}") if s in SYMPTOMS]
    raw = (form.get(f"t.{resident_id}") or "").strip().replace(",", ".")
    if not raw:
        return None, symptoms, "paper.entry.temperature_needed"
    try:
        value = float(raw)
    except ValueError:
        return None, symptoms, "paper.entry.temperature_invalid"
    if not 34.0 <= value <= 43.0:
        return None, symptoms, "paper.entry.temperature_invalid"
    return value, symptoms, None


def _key(building_id: str, day: str, resident_id: str, temperature: float, symptoms: list[str]) -> str:
    """The same filled row keyed twice is one check-in (check-in answers the first again);
    a corrected row is a new key, so it revises the day."""
    body = f"{building_id}|{day}|{resident_id}|{temperature:.1f}|{','.join(sorted(symptoms))}"
    return "paper-" + hashlib.sha256(body.encode()).hexdigest()[:40]


@router.post("/paper/buildings/{building_id}/checkins/entry", response_class=HTMLResponse, include_in_schema=False)
async def enter_sheet(building_id: str, request: Request, session: Annotated[PortalSession, _may("entry")]):
    """The filled sheet as one batch: every ticked row becomes a check-in (channel
    `building_lead`, the sheet's date, an idempotency key per filled row). Nothing is sent
    while a ticked row lacks a readable temperature: the screen comes back with the values."""
    same_origin(request)
    form = await request.form()
    building = await _building(request, session, building_id, _day(form.get("date")))
    day = str(building["date"])
    values: dict[str, dict] = {}
    errors: dict[str, str] = {}
    batch: list[tuple[dict, float, list[str]]] = []
    for row in building["rows"]:
        rid = row["resident_id"]
        if not form.get(f"tick.{rid}"):
            continue
        temperature, symptoms, error = _reading(form, rid)
        values[rid] = {"tick": True, "t": form.get(f"t.{rid}") or "", "s": symptoms}
        if error:
            errors[rid] = error
        else:
            batch.append((row, temperature, symptoms))
    if errors:
        return render(
            request,
            "paper_entry.html",
            422,
            building=building,
            symptoms=SYMPTOMS,
            values=values,
            errors=errors,
            done=None,
        )
    services = services_of(request)
    gate = asyncio.Semaphore(KEYING_AT_ONCE)

    async def submit(row: dict, temperature: float, symptoms: list[str]) -> str | None:
        body = {
            "resident_id": row["resident_id"],
            "temperature_c": temperature,
            "symptoms": symptoms,
            "channel": "building_lead",
            "date": day,
        }
        key = _key(building_id, day, row["resident_id"], temperature, symptoms)
        async with gate:
            try:
                await services.call(
                    session, "checkin", "POST", "/checkins", json=body, headers={"Idempotency-Key": key}
                )
            except ServiceError as exc:
                return exc.detail
        return None

    outcomes = await asyncio.gather(*(submit(*each) for each in batch))
    refused = {row["resident_id"]: detail for (row, _, _), detail in zip(batch, outcomes, strict=True) if detail}
    building = await _building(request, session, building_id, dt.date.fromisoformat(day))
    kept = {rid: v for rid, v in values.items() if rid in refused}
    return render(
        request,
        "paper_entry.html",
        422 if refused else 200,
        building=building,
        symptoms=SYMPTOMS,
        values=kept,
        errors={rid: "paper.entry.refused" for rid in refused},
        refusals=refused,
        done={"entered": len(batch) - len(refused), "refused": len(refused)},
    )


# -- the grid worker's follow-up list -------------------------------------------------------


@router.get("/paper/followups", response_class=HTMLResponse, include_in_schema=False)
@router.get("/paper/followups.pdf", include_in_schema=False)
async def followups_sheet(
    request: Request,
    session: Annotated[PortalSession, _may("followups")],
    grid_id: str | None = None,
    date: str | None = None,
):
    grid = grid_id or (session.grid_ids[0] if session.grid_ids else None)
    if grid is None:
        raise ServiceError("portal", 422, "paper.grid_needed")
    day = _day(date)
    params = {"grid_id": grid, **({"date": day.isoformat()} if day else {})}
    answer = await services_of(request).call(session, "checkin", "GET", "/followups", params=params)
    return await _page(
        request,
        "paper_followups.html",
        request.url.path.endswith(".pdf"),
        f"followups-{grid}-{answer['date']}.pdf",
        answer=answer,
        grid=grid,
        pdf_url=f"/paper/followups.pdf?grid_id={grid}&date={answer['date']}",
    )


# -- a volunteer's route sheet ----------------------------------------------------------------


@router.get("/paper/runs/{run_name}", include_in_schema=False)
async def route_sheet(run_name: str, request: Request, session: Annotated[PortalSession, _may("route")]):
    run_id, pdf = _split(run_name)
    services = services_of(request)
    run = await services.call(session, "dispatch", "GET", f"/runs/{run_id}")
    try:  # what to bring, by its name in the catalog
        items = {
            i["item_id"]: i for i in await services.call(session, "supplies", "GET", "/items", params={"limit": 500})
        }
    except ServiceError:
        items = {}
    return await _page(
        request,
        "paper_route.html",
        pdf,
        f"route-{run_id}.pdf",
        run=run,
        items=items,
        local=_local_time(request),
        pdf_url=f"/paper/runs/{run_id}.pdf",
    )


def _local_time(request: Request):
    tz = request.app.state.settings.tz

    def local(value: str | None, fmt: str = "%H:%M") -> str:
        if not value:
            return ""
        return dt.datetime.fromisoformat(value).astimezone(tz).strftime(fmt)

    return local


# -- the meeting agenda ------------------------------------------------------------------------


@router.get("/paper/agenda", response_class=HTMLResponse, include_in_schema=False)
@router.get("/paper/agenda.pdf", include_in_schema=False)
async def agenda_sheet(request: Request, session: Annotated[PortalSession, _may("agenda")], date: str | None = None):
    day = _day(date)
    agenda = await services_of(request).call(
        session, "command", "GET", "/agenda", params={"date": day.isoformat()} if day else None
    )
    return await _page(
        request,
        "paper_agenda.html",
        request.url.path.endswith(".pdf"),
        f"agenda-{agenda['date']}.pdf",
        agenda=agenda,
        local=_local_time(request),
        pdf_url=f"/paper/agenda.pdf?date={agenda['date']}",
    )


# -- the monthly recognition board of a building --------------------------------------------


@router.get("/paper/buildings/{building_id}/recognition", response_class=HTMLResponse, include_in_schema=False)
@router.get("/paper/buildings/{building_id}/recognition.pdf", include_in_schema=False)
async def recognition_board(
    building_id: str,
    request: Request,
    session: Annotated[PortalSession, _may("recognition")],
    month: str | None = None,
):
    """The time bank's monthly leaderboard (members who opted out are not on it), keeping
    the residents of the building: the building reads its own helpers' names."""
    services = services_of(request)
    building = await services.call(session, "checkin", "GET", "/households", params={"building_id": building_id})
    residents = {m["resident_id"]: (h["unit"], h["room"]) for h in building["households"] for m in h["members"]}
    board = await services.call(session, "timebank", "GET", "/leaderboard", params={"month": month} if month else None)
    entries = [dict(e, home=residents[e["member_id"]]) for e in board["entries"] if e["member_id"] in residents]
    return await _page(
        request,
        "paper_recognition.html",
        request.url.path.endswith(".pdf"),
        f"recognition-{building_id}-{board['month']}.pdf",
        building_id=building_id,
        month=board["month"],
        entries=entries,
        pdf_url=f"/paper/buildings/{building_id}/recognition.pdf?month={board['month']}",
    )
