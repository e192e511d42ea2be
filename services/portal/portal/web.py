"""What every portal page shares: assets, templates, the session, rendering and redirects."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from common.auth import Role
from portal import domain, i18n, sheets
from portal.clients import Services
from portal.models import PortalSession
from portal.service import PortalService, SignedIn

COOKIE = "firstline_session"
LANG_COOKIE = "firstline_lang"
HERE = Path(__file__).parent
CATEGORIES = ("groceries", "medicine", "medical_visit", "tech_help", "psychological")
SYMPTOMS = ("cough", "sore_throat", "fatigue", "loss_of_smell_or_taste", "shortness_of_breath", "diarrhea")
QUICK_TEMPERATURES = ("36.3", "36.5", "36.8")


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


# Where each role lands after signing in: its main page (a role without one: "/me").
LANDING: dict[str, str] = {
    Role.building_lead.value: "/lead",
    Role.grid_worker.value: "/grid",
    Role.volunteer.value: "/volunteer",
    Role.partner.value: "/desk",
    Role.supplies_officer.value: "/supplies",
    Role.dispatcher.value: "/dispatch",
    Role.command.value: "/board",
}


def home_of(session: PortalSession) -> str:
    if session.household_id:
        return "/home"
    return LANDING.get(session.role, "/me")


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


class _SignIn(Exception):
    """No session for a page that needs one: back to the sign-in page."""


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
