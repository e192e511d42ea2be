"""The HTTP side every service shares: app factory with lifespan, health, readiness,
metrics, AsyncAPI, documentation pages, and one error format (`{"detail": "..."}`) for bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from common import logs
from common.asyncapi import page as render_asyncapi
from common.auth import verifier_for
from common.errors import DomainError, TooManyRequests
from common.limits import BodyLimit, validation_error
from common.metrics import HttpMetrics, exposition
from common.runtime import Runtime
from common.web_docs import add_docs


def create_http_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    state: dict[str, Any] | None = None,
    body_limits: Mapping[str, int] | None = None,
) -> FastAPI:
    """`body_limits` maps a path (an upload) to its own body limit; every other request's
    body is limited by the service's `max_body_bytes`."""
    settings = runtime.settings
    logs.configure(settings.service, settings.log_level, settings.log_json)

    verifier = (state or {}).get("verifier") or verifier_for(settings, settings.service)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        await verifier.start()
        try:
            yield
        finally:
            await runtime.stop()
            await verifier.stop()

    # FastAPI's native OpenTelemetry looks up the global providers on every request (reading
    # the environment each time); FirstLine's metrics are Prometheus', so it is off unless
    # FIRSTLINE_OPENTELEMETRY is set (an OpenTelemetry SDK then needs configuring).
    telemetry = None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        telemetry=telemetry,
        docs_url=None,  # served by add_docs from the deployment's own files, not a CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.verifier = verifier
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, paths=body_limits)
    app.add_middleware(HttpMetrics, registry=runtime.registry, service=settings.service)
    app.add_middleware(logs.RequestContext)  # outermost: every log line of the request carries its id

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooManyRequests) else None
        return JSONResponse({"detail": exc.message, **exc.details}, status_code=exc.status_code, headers=headers)

    app.add_exception_handler(RequestValidationError, validation_error)

    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service}

    @ops.get("/readyz", summary="Database and Kafka are reachable")
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @ops.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics():
        return exposition(runtime.registry)

    @ops.get("/asyncapi", summary="AsyncAPI document: what this service publishes and consumes")
    async def asyncapi() -> Any:
        return runtime.asyncapi(title=f"FirstLine {settings.service} events")

    @ops.get("/asyncapi.html", summary="The AsyncAPI document as a page", include_in_schema=False)
    async def asyncapi_page() -> HTMLResponse:
        return HTMLResponse(render_asyncapi(runtime.asyncapi(title=f"FirstLine {settings.service} events")))

    # The routes join the app's own table instead of `include_router`: FastAPI 0.165 keeps an
    # included router as a nested matcher that walks its routes again, twice, on every request
    # (~40 µs, a third of a trivial endpoint's whole cost). Our routers have no prefix,
    # dependencies or settings of their own, so their routes are complete as they are
    # (`app.dependency_overrides` does not reach them: tests build apps with their own fakes).
    # The service's own routes come first, before the operations and documentation ones:
    # Starlette tries routes in order, and each miss costs a regular-expression match.
    app.router.routes[:0] = [route for router in routers for route in router.routes]
    app.router.routes.extend(ops.routes)
    add_docs(app, title)
    return app
