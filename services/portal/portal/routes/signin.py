"""Signing in and out: the keys services verify with, the landing page, language, codes, invitations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from common.errors import Invalid
from portal import i18n
from portal.service import SignInRefused
from portal.web import (
    ASSETS,
    COOKIE,
    LANG_COOKIE,
    MaybeSession,
    client_address,
    home_of,
    message_page,
    portal_of,
    redirect,
    render,
    same_origin,
    signed_in,
)

router = APIRouter()


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    found = ASSETS.files.get(name)
    if found is None:
        raise HTTPException(404, "no such asset")
    return Response(found[0], media_type=found[1], headers={"Cache-Control": "public, max-age=31536000, immutable"})


# -- keys and revocations: what services verify tokens with --------------------------------------------------------------------------


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
