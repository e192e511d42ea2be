"""Wiring only: `create_app(settings)` builds the portal; nothing runs at import.

uvicorn --factory portal.main:app_from_env --port 8000
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.middleware.gzip import GZipMiddleware

from common.auth import Verifier
from common.clock import Clock
from common.kafka import client_kwargs
from common.notify import Notifier, notifier_for
from common.runtime import Runtime
from common.web import create_http_app
from portal import api
from portal.clients import ServiceError, Services
from portal.live import LiveFeed
from portal.metrics import PortalMetrics
from portal.service import ENDINGS_POLL_S, PortalService
from portal.settings import PortalSettings

DESCRIPTION = """The front door: household QR codes, phone sign-in, and the pages residents
and building leads use on a phone. Signs the short-lived tokens every service verifies
(`/.well-known/jwks.json`) and lists ended sessions (`/.well-known/revoked-sessions`).
Calls the services over HTTP on the signed-in person's behalf; publishes nothing."""


class PortalRuntime(Runtime):
    live: LiveFeed | None = None

    async def start(self) -> None:
        await super().start()
        if self.live is not None:
            await self.live.start()

    async def stop(self) -> None:
        if self.live is not None:
            await self.live.stop()
        await super().stop()

    async def readiness(self) -> dict[str, bool]:
        return {"database": await self.db.ping()}  # Kafka only feeds live updates: pages work without it


class PortalVerifier(Verifier):
    """The portal verifies bearer tokens (the operator's admin calls) with its own keys and
    its own ended sessions, without fetching either over HTTP."""

    def __init__(self, portal: PortalService) -> None:
        super().__init__("portal", jwks_url="local", revocations_url="local")
        self.portal = portal
        self.use_jwks(portal.keyring.jwks())
        self.use_revocations([])

    async def refresh_keys(self) -> None:
        self.use_jwks(self.portal.keyring.jwks())

    async def refresh_revocations(self) -> None:
        self.use_revocations(await self.portal.revoked_sessions())


def create_app(
    settings: PortalSettings | None = None,
    *,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """`transport` lets tests route the portal's calls to in-process services."""
    settings = settings or PortalSettings()
    runtime = PortalRuntime(
        settings, clock=clock, migrations_dir=Path(__file__).parent / "migrations", description=DESCRIPTION
    )
    runtime.live = LiveFeed(client_kwargs(settings, "portal")) if settings.live_updates else None
    notifier = notifier or notifier_for(settings.notifier_url, token=settings.notifier_token)
    portal = PortalService(runtime, settings, notifier)
    runtime.every("forget-ended-sessions", portal.forget_ended_sessions, ENDINGS_POLL_S)
    metrics = PortalMetrics(runtime.registry)
    services = Services(
        settings, portal, transport, on_call=lambda service, status: metrics.service_calls.labels(service, status).inc()
    )
    app = create_http_app(
        runtime,
        title="FirstLine portal",
        description=DESCRIPTION,
        routers=[api.router],
        state={
            "portal": portal,
            "services": services,
            "settings": settings,
            "metrics": metrics,
            "live": runtime.live,
            "verifier": PortalVerifier(portal),
        },
    )
    app.add_middleware(GZipMiddleware, minimum_size=500)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per call to a service

    @app.exception_handler(api._SignIn)
    async def sign_in_first(request: Request, _: Exception) -> RedirectResponse:
        return api.redirect("/")

    @app.exception_handler(ServiceError)
    async def service_refused(request: Request, exc: ServiceError):
        if request.url.path.startswith(("/admin/", "/api/")):
            return JSONResponse(
                {"detail": f"{exc.service}: {exc.detail}"},
                status_code=exc.status_code if exc.status_code < 500 else 502,
            )
        return api.message_page(
            request, "errors.service", exc.status_code if exc.status_code < 500 else 502, detail=exc.detail
        )

    return app


def app_from_env() -> FastAPI:
    return create_app()
