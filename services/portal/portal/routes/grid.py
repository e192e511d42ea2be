"""The people who do the rounds, on their phones: the grid worker's follow-up list (call,
record the outcome, the three-step conversation) and the volunteer's run (map, stops,
delivered or not, hours this month)."""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from common.auth import Role
from portal import domain, workbench
from portal.clients import ServiceError
from portal.i18n import Translator
from portal.models import PortalSession
from portal.web import (
    CATEGORIES,
    SYMPTOMS,
    _SignIn,
    message_page,
    redirect,
    render,
    same_origin,
    services_of,
    session_or_none,
    translator,
)

router = APIRouter()

OUTCOMES = ("fine", "help", "retry")
OTHER_HELP = "other"  # not a request dispatch serves: a ticket for the grid (isolation_difficulty)
FAIL_REASONS = ("nobody_home", "unreachable", "refused", "wrong_address", "other")
MINUTES = (10, 20, 30, 45, 60)


def _role(*roles: Role):
    async def dependency(request: Request) -> PortalSession:
        session = await session_or_none(request)
        if session is None or session.role not in {r.value for r in roles}:
            raise _SignIn()
        return session

    return dependency


WorkerSession = Annotated[PortalSession, Depends(_role(Role.grid_worker))]
VolunteerSession = Annotated[PortalSession, Depends(_role(Role.volunteer))]


def _tz(request: Request):
    return request.app.state.settings.tz


def _today(request: Request) -> date:
    return request.app.state.portal.clock.now().astimezone(_tz(request)).date()


# -- the grid worker ----------------------------------------------------------------------


def _when(t: Translator, arranged: workbench.Arrangement, today: date) -> str:
    key, values = workbench.day_word(arranged.day, today)
    day = t(key, **values)
    if arranged.start_hour is not None:
        return t("grid.when.window", day=day, start=arranged.start_hour, end=arranged.end_hour)
    return t("grid.when.by", day=day, time=arranged.by_time)


def talk(t: Translator, card: workbench.Card, today: date) -> list[tuple[str, str]]:
    """三步沟通法, filled from what the system knows: empathise, explain, offer."""
    item = card.item
    name = domain.given_name(item["name"])
    values = {
        "name": name,
        "temperature": f"{item['last_temperature_c']:.1f}" if item.get("last_temperature_c") is not None else "",
        "days": item.get("days_missed") or 0,
    }
    empathise = t(f"grid.talk.empathise.{card.situation}", **values)
    if card.own_words:
        empathise += t("grid.talk.heard", words=card.own_words)
    if card.arranged:
        offer = t(
            "grid.talk.offer.arranged" if card.arranged.volunteer_name else "grid.talk.offer.arranged_anyone",
            when=_when(t, card.arranged, today),
            who=card.arranged.volunteer_name,
            what=t(f"category.{card.arranged.category}"),
        )
    else:
        offer = t(f"grid.talk.offer.{card.situation}")
    if {"elderly", "living_alone"} & set(item.get("tags") or ()):
        offer += t("grid.talk.offer.alone")
    return [
        (t("grid.talk.empathise"), empathise),
        (t("grid.talk.explain"), t(f"grid.talk.explain.{card.situation}")),
        (t("grid.talk.offer"), offer),
    ]


@router.get("/grid", response_class=HTMLResponse, include_in_schema=False)
async def grid_worker(request: Request, session: WorkerSession, done: str | None = None, error: str | None = None):
    services = services_of(request)
    t = translator(request)
    followups = await services.followups(session)
    completion = await services.grid_completion(session)
    away = []
    tickets: list[dict] = []
    requests: list[dict] = []
    try:
        tickets = await services.open_tickets(session)
    except ServiceError:
        away.append("command")
    try:
        requests = await services.grid_requests(session)
    except ServiceError:
        away.append("dispatch")
    today = date.fromisoformat(str(followups["date"]))
    cards = workbench.cards(followups["followups"], tickets, requests, _tz(request))
    done_count = sum(1 for c in cards if c.state == "done")
    return render(
        request,
        "grid.html",
        cards=cards,
        talks={c.resident_id: talk(t, c, today) for c in cards},
        completion=completion,
        rate=round(100 * completion["rate"]) if completion.get("rate") is not None else 100,
        done_count=done_count,
        categories=CATEGORIES,
        symptoms=SYMPTOMS,
        away=away,
        done=done if done in OUTCOMES else None,
        error=error,
    )


@router.post("/grid/outcome/{resident_id}", include_in_schema=False)
async def record_outcome(
    resident_id: str,
    request: Request,
    session: WorkerSession,
    outcome: Annotated[str, Form()],
    category: Annotated[str, Form()] = "",
    details: Annotated[str, Form(max_length=2000)] = "",
):
    """One tap after the call: the resident's tickets are acknowledged or resolved in the
    command center; "needs help" also raises the request (or a ticket) for what they need."""
    same_origin(request)
    t = translator(request)
    services = services_of(request)

    def back(query: str) -> RedirectResponse:
        return redirect(f"/grid?{query}#r-{quote(resident_id)}")

    if outcome not in OUTCOMES:
        return back("error=grid.outcome_needed")
    if outcome == "help" and category not in (*CATEGORIES, OTHER_HELP):
        return back("error=grid.help_needed")
    try:
        # The tickets first: with the command center away, nothing is raised that it would not hear of.
        mine = [tk for tk in await services.open_tickets(session) if tk.get("resident_id") == resident_id]
        if outcome == "help" and category == OTHER_HELP:
            listed = {i["resident_id"]: i for i in (await services.followups(session))["followups"]}
            if resident_id not in listed:
                return back("error=grid.not_on_list")
            await services.report(
                session,
                "isolation_difficulty",
                details.strip() or t("grid.help.other_default"),
                resident_id,
                listed[resident_id]["grid_id"],
            )
        elif outcome == "help":
            await services.raise_request(session, resident_id, category, details.strip(), [], as_member=False)
        what = t(f"category.{category}") if category in CATEGORIES else t("grid.help.other")
        note = {
            "fine": t("grid.note.fine"),
            "help": t("grid.note.help", what=what),
            "retry": t("grid.note.retry"),
        }[outcome]
        for step in workbench.steps(mine, outcome):
            if step.acknowledge:
                await services.acknowledge(session, step.ticket_id, note)
            if step.resolve:
                await services.resolve(session, step.ticket_id, note)
    except ServiceError as exc:
        return back(f"error={quote(exc.detail)}")
    return back(f"done={outcome}")


# -- the volunteer --------------------------------------------------------------------------


def _hhmm(at: str | datetime | None, tz) -> str:
    moment = workbench.when(at)
    return f"{moment.astimezone(tz):%H:%M}" if moment else ""


@router.get("/volunteer", response_class=HTMLResponse, include_in_schema=False)
async def volunteer(request: Request, session: VolunteerSession, done: str | None = None, error: str | None = None):
    services = services_of(request)
    tz = _tz(request)
    today = _today(request)
    try:
        me = await services.volunteer(session)
    except ServiceError as exc:
        if exc.status_code == 404:
            return message_page(request, "grid.vol.not_registered", 404)
        raise
    runs = []
    for summary in sorted(await services.runs(session), key=lambda r: str(r["slot_start"])):
        if workbench.when(summary["slot_start"]).astimezone(tz).date() != today:
            continue
        run = await services.run(session, summary["run_id"])
        for n, stop in enumerate(run["stops"], start=1):
            stop["n"] = n
            stop["eta_local"] = _hhmm(stop["eta"], tz)
            stop["geo"] = workbench.geo_uri(stop["lat"], stop["lon"], stop.get("name") or str(n))
        run["map"] = workbench.run_map(run)
        run["slot"] = f"{_hhmm(run['slot_start'], tz)}–{_hhmm(run['slot_end'], tz)}"
        run["back_at"] = _hhmm(run["return_at"], tz)
        runs.append(run)
    on_runs = {s["request_id"] for r in runs for s in r["stops"]}
    queue = [
        dict(r, due_local=_hhmm(r["due_by"], tz))
        for r in await services.queue(session)
        if r["status"] in workbench.ARRANGED and r["request_id"] not in on_runs
    ]
    month = None
    with contextlib.suppress(ServiceError):  # the time bank away: the run still shows
        now = request.app.state.portal.clock.now().astimezone(tz)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        month = workbench.month_totals(await services.ledger(session, session.sub), start)
    return render(
        request,
        "volunteer.html",
        me=me,
        runs=runs,
        queue=queue,
        month=month,
        minutes=MINUTES,
        reasons=FAIL_REASONS,
        done=done if done in ("delivered", "failed") else None,
        error=error,
    )


@router.post("/volunteer/stops/{request_id}/delivered", include_in_schema=False)
async def delivered(
    request_id: str,
    request: Request,
    session: VolunteerSession,
    service_minutes: Annotated[int, Form(ge=0, le=1440)] = 20,
):
    same_origin(request)
    try:
        await services_of(request).fulfil(session, request_id, service_minutes)
    except ServiceError as exc:
        return redirect(f"/volunteer?error={quote(exc.detail)}#s-{quote(request_id)}")
    return redirect(f"/volunteer?done=delivered#s-{quote(request_id)}")


@router.post("/volunteer/stops/{request_id}/failed", include_in_schema=False)
async def could_not_deliver(
    request_id: str,
    request: Request,
    session: VolunteerSession,
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=300)] = "",
):
    same_origin(request)
    if reason not in FAIL_REASONS or (reason == "other" and not note.strip()):
        return redirect(f"/volunteer?error=grid.vol.reason_needed#s-{quote(request_id)}")
    t = translator(request)
    why = t(f"grid.vol.reason.{reason}") + (f"：{note.strip()}" if note.strip() else "")
    try:
        await services_of(request).fail(session, request_id, why[:500])
    except ServiceError as exc:
        return redirect(f"/volunteer?error={quote(exc.detail)}#s-{quote(request_id)}")
    return redirect(f"/volunteer?done=failed#s-{quote(request_id)}")
