"""Portal routes: the pages (server-rendered, a little JavaScript on top), the JSON the
pages' script calls, the keys services verify with, and the operator's admin calls.

A route reads the session from its cookie, calls a use case or a service on the
person's behalf, and renders a template; every text comes from the message catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from common.auth import Principal, Role, require
from common.errors import Invalid
from portal import domain, i18n, sheets
from portal.clients import ServiceError, Services
from portal.models import PortalSession
from portal.service import PortalService, SignedIn, SignInRefused

COOKIE = "firstline_session"
LANG_COOKIE = "firstline_lang"
HERE = Path(__file__).parent
CATEGORIES = ("groceries", "medicine", "medical_visit", "tech_help", "psychological")
SYMPTOMS = ("cough", "sore_throat", "fatigue", "loss_of_smell_or_taste", "shortness_of_breath", "diarrhea")
QUICK_TEMPERATURES = ("36.3", "36.5", "36.8")

router = APIRouter()


# -- assets: fingerprinted, cached for ever ---------------------------------------------


class Assets:
    def __init__(self, directory: Path) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.names: dict[str, str] = {}
        for path in sorted(directory.iterdir()):
            body = path.read_bytes()
            stem, _, ext = path.name.rpartition(".")
            name = f"{stem}.{hashlib.sha256(body).hexdigest()[:10]}.{ext}"
            media = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}.get(
                ext, "application/octet-stream"
            )
            self.files[name] = (body, media)
            self.names[path.name] = f"/static/{name}"

    def url(self, name: str) -> str:
        return self.names[name]


ASSETS = Assets(HERE / "static")
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
)
TEMPLATES.globals.update(asset=ASSETS.url, given_name=domain.given_name)


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    found = ASSETS.files.get(name)
    if found is None:
        raise HTTPException(404, "no such asset")
    return Response(found[0], media_type=found[1], headers={"Cache-Control": "public, max-age=31536000, immutable"})


# -- helpers --------------------------------------------------------------------------


def portal_of(request: Request) -> PortalService:
    return request.app.state.portal


def services_of(request: Request) -> Services:
    return request.app.state.services


def translator(request: Request) -> i18n.Translator:
    return i18n.Translator(i18n.language_of(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    html = TEMPLATES.get_template(template).render(
        t=t, lang=t.lang, path=request.url.path, dev_outbox=request.app.state.settings.dev_outbox_on, **context
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def live_url(request: Request) -> str | None:
    return "/events" if request.app.state.live is not None else None


def message_page(request: Request, key: str, status_code: int, **context: Any) -> HTMLResponse:
    return render(request, "message.html", status_code=status_code, message=key, **context)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def signed_in(response: Response, request: Request, signed: SignedIn) -> Response:
    settings = request.app.state.settings
    response.set_cookie(
        COOKIE,
        signed.cookie,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


def home_of(session: PortalSession) -> str:
    if session.household_id:
        return "/home"
    if session.role == Role.building_lead.value:
        return "/lead"
    return "/me"


async def session_or_none(request: Request) -> PortalSession | None:
    return await portal_of(request).session(request.cookies.get(COOKIE))


MaybeSession = Annotated[PortalSession | None, Depends(session_or_none)]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def same_origin(request: Request) -> None:
    """Form posts must come from the portal's own pages (with SameSite=Lax, a second line)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        expected = f"{request.url.scheme}://{request.url.netloc}"
        public = request.app.state.settings.public_url.rstrip("/")
        if origin not in (expected, public):
            raise HTTPException(403, "cross-site request refused")


# -- keys and revocations: what services verify tokens with ------------------------------


@router.get("/.well-known/jwks.json", tags=["tokens"])
async def jwks(request: Request) -> JSONResponse:
    """The portal's public keys (EdDSA, by `kid`): every key that may have signed a live token."""
    return JSONResponse(portal_of(request).keyring.jwks(), headers={"Cache-Control": "public, max-age=60"})


@router.get("/.well-known/revoked-sessions", tags=["tokens"])
async def revoked_sessions(request: Request) -> dict:
    """Sessions ended within a token's lifetime: services refuse tokens carrying them (`sid`)."""
    return {"session_ids": await portal_of(request).revoked_sessions()}


# -- signing in -------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request, session: MaybeSession):
    if session is not None:
        return redirect(home_of(session))
    return render(request, "signin.html")


@router.get("/lang/{lang}", include_in_schema=False)
async def switch_language(lang: str, request: Request, next: str = "/"):
    response = redirect(next if next.startswith("/") and not next.startswith("//") else "/")
    if lang in i18n.LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/h/{code}", response_class=HTMLResponse, include_in_schema=False)
async def household_sign_in(code: str, request: Request):
    """A household's QR code: signs the phone in as the household, no password."""
    portal = portal_of(request)
    if not portal.allow_attempt(client_address(request)):
        return message_page(request, "signin.too_many", 429)
    try:
        signed = await portal.sign_in_household(code)
    except SignInRefused as refused:
        request.app.state.metrics.sign_ins.labels("household", "refused").inc()
        return message_page(request, refused.reason, refused.status_code)
    request.app.state.metrics.sign_ins.labels("household", "ok").inc()
    return signed_in(redirect("/home"), request, signed)


@router.post("/signin/code", response_class=HTMLResponse, include_in_schema=False)
async def send_code(request: Request, phone: Annotated[str, Form()] = ""):
    same_origin(request)
    portal = portal_of(request)
    if not portal.allow_attempt(client_address(request)):
        return message_page(request, "signin.too_many", 429)
    request.app.state.metrics.codes_sent.inc()
    try:
        await portal.send_code(phone)
    except Invalid:
        return render(request, "signin.html", 422, error="signin.phone_invalid", phone=phone)
    return render(request, "code.html", phone=phone)


@router.post("/signin", response_class=HTMLResponse, include_in_schema=False)
async def sign_in(request: Request, phone: Annotated[str, Form()] = "", code: Annotated[str, Form()] = ""):
    same_origin(request)
    portal = portal_of(request)
    if not portal.allow_attempt(client_address(request)):
        return message_page(request, "signin.too_many", 429)
    try:
        signed = await portal.sign_in_with_code(phone, code)
    except Invalid:
        return render(request, "signin.html", 422, error="signin.phone_invalid", phone=phone)
    except SignInRefused as refused:
        request.app.state.metrics.sign_ins.labels("code", "refused").inc()
        return render(request, "code.html", refused.status_code, error=refused.reason, phone=phone)
    request.app.state.metrics.sign_ins.labels("code", "ok").inc()
    return signed_in(redirect(home_of(signed.session)), request, signed)


@router.get("/invite/{token}", response_class=HTMLResponse, include_in_schema=False)
async def accept_invitation(token: str, request: Request):
    portal = portal_of(request)
    if not portal.allow_attempt(client_address(request)):
        return message_page(request, "signin.too_many", 429)
    try:
        signed = await portal.accept_invitation(token)
    except SignInRefused as refused:
        request.app.state.metrics.sign_ins.labels("invitation", "refused").inc()
        return message_page(request, refused.reason, refused.status_code)
    request.app.state.metrics.sign_ins.labels("invitation", "ok").inc()
    return signed_in(redirect(home_of(signed.session)), request, signed)


@router.post("/signout", include_in_schema=False)
async def sign_out(request: Request):
    same_origin(request)
    await portal_of(request).sign_out(request.cookies.get(COOKIE))
    response = redirect("/")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/dev/outbox", response_class=HTMLResponse, include_in_schema=False)
async def dev_outbox(request: Request):
    """Development only: the sign-in codes the SMS gateway would have sent."""
    if not request.app.state.settings.dev_outbox_on:
        raise HTTPException(404, "not found")
    return render(request, "outbox.html", messages=portal_of(request).dev_outbox)


@router.get("/me", response_class=HTMLResponse, include_in_schema=False)
async def me(request: Request, session: MaybeSession):
    if session is None:
        return redirect("/")
    return render(request, "me.html", session=session)


# -- the household's page ---------------------------------------------------------------


async def household_session(request: Request) -> PortalSession:
    session = await session_or_none(request)
    if session is None or not session.household_id:
        raise _SignIn()
    return session


class _SignIn(Exception):
    """No session for a page that needs one: back to the sign-in page."""


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


# -- the building lead's page -----------------------------------------------------------


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


# -- QR sheets and the operator's admin calls --------------------------------------------


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


async def _pdf(request: Request, building: dict) -> Response:
    portal = portal_of(request)
    links = {h["household_id"]: await portal.household_link(h["household_id"]) for h in building["households"]}
    html = render(
        request, "qr_sheet.html", building=building, codes={h: sheets.qr_svg(url) for h, url in links.items()}
    ).body.decode()
    pdf = await sheets.print_pdf(request.app.state.settings.chromium, html)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="qr-{building["building_id"]}.pdf"'},
    )


Admin = Annotated[Principal, Depends(require(Role.admin))]


class LinkIn(BaseModel):
    renew: bool = Field(
        False, description="revoke the current code and issue a new one (ends the household's sessions)"
    )


@router.post("/admin/households/{household_id}/link", tags=["admin"])
async def admin_household_link(household_id: str, body: LinkIn, request: Request, user: Admin) -> dict:
    """The household's sign-in link (`household_id` may be a resident's id: their household)."""
    household = await services_of(request).call_as(user, "checkin", "GET", f"/households/{household_id}")
    portal = portal_of(request)
    if body.renew:
        await portal.end_sessions_of(household_id=household["household_id"])
    url = await portal.household_link(household["household_id"], renew=body.renew)
    return {"household_id": household["household_id"], "url": url}


class InvitationIn(BaseModel):
    role: Role
    sub: str = Field(min_length=1, max_length=60)
    phone: str | None = None
    grid_ids: list[str] = Field(default_factory=list)
    building_ids: list[str] = Field(default_factory=list)
    department: str | None = None


@router.post("/admin/invitations", status_code=201, tags=["admin"])
async def admin_invite(body: InvitationIn, request: Request, _: Admin) -> dict:
    """A one-time sign-in link for a staff member, volunteer, building lead or partner desk."""
    scope = domain.Scope(body.sub, body.role.value, tuple(body.grid_ids), tuple(body.building_ids), body.department)
    try:
        url = await portal_of(request).invite(scope, body.phone)
    except Invalid as exc:
        raise HTTPException(422, "phone is not a phone number") from exc
    return {"sub": body.sub, "role": body.role.value, "url": url}


@router.post("/admin/sessions/revoke", tags=["admin"])
async def admin_revoke(request: Request, _: Admin, sub: str | None = None, household_id: str | None = None) -> dict:
    """End every live session of a person or a household; their tokens stop working at once."""
    if not sub and not household_id:
        raise HTTPException(422, "give sub or household_id")
    return {"ended": await portal_of(request).end_sessions_of(sub=sub, household_id=household_id)}


@router.get("/admin/buildings/{building_id}/qr.pdf", tags=["admin"], response_class=Response)
async def admin_qr_sheet(building_id: str, request: Request, user: Admin) -> Response:
    building = await services_of(request).call_as(
        user, "checkin", "GET", "/households", params={"building_id": building_id}
    )
    if not building["households"]:
        raise HTTPException(404, f"no household in building {building_id}")
    return await _pdf(request, building)
