"""The HTTP side every service shares: app factory with lifespan, health, readiness,
metrics, AsyncAPI, documentation pages, and one error format (`{"detail": "..."}`) for bad input."""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from common import logs
from common.asyncapi import page as render_asyncapi
from common.auth import verifier_for
from common.errors import DomainError, TooManyRequests
from common.limits import BodyLimit, validation_error
from common.metrics import HttpMetrics, exposition
from common.runtime import Runtime
from common.web_docs import add_docs

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5  # what a 503 asks the client to wait before trying again

# The database's own words for "cannot write here": a full disk, a read-only file system.
DISK_FULL = ("database or disk is full", "no space left", "disk full", "could not extend file")
READ_ONLY = ("readonly database", "read-only file system", "read only")


def unavailable_reason(exc: BaseException) -> str | None:
    """Why storage refuses a request that would succeed later ("disk-full", "read-only",
    "database-unavailable"), or None when the error is a bug (answered 500)."""
    from common.bus import is_outage

    text = ""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        text += f" {type(seen).__name__} {seen}".lower()
        if getattr(seen, "errno", None) == errno.ENOSPC:
            return "disk-full"
        if getattr(seen, "errno", None) == errno.EROFS:
            return "read-only"
        seen = seen.__cause__ or seen.__context__
    if any(words in text for words in DISK_FULL) or "diskfullerror" in text:
        return "disk-full"
    if any(words in text for words in READ_ONLY):
        return "read-only"
    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)):
        return None  # a file the code wanted (not the database, not a full disk): a bug
    return "database-unavailable" if is_outage(exc) else None


UNAVAILABLE_DETAIL = {
    "disk-full": "服务器磁盘已满，暂时无法保存。请稍后再试。The server's disk is full: nothing can be saved for now. Try again later.",
    "read-only": "服务器存储为只读，暂时无法保存。请稍后再试。The server's storage is read-only: nothing can be saved for now. Try again later.",
    "database-unavailable": "数据库暂时不可用，请稍后再试。The database is unavailable for the moment. Try again shortly.",
}


async def storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A request the database or the disk cannot serve now: 503 with a JSON reason and
    Retry-After, never a stack trace or a closed connection; nothing half-written (the
    transaction was rolled back). Any other database error is a bug: 500, logged."""
    reason = unavailable_reason(exc)
    if reason is None:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "服务器内部错误。Internal server error."}, status_code=500)
    log.warning("%s %s: 503 %s (%s: %s)", request.method, request.url.path, reason, type(exc).__name__, exc)
    return JSONResponse(
        {"detail": UNAVAILABLE_DETAIL[reason], "reason": reason},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


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
    for unavailable in (SQLAlchemyError, OSError, TimeoutError):
        app.add_exception_handler(unavailable, storage_unavailable)

    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service}

    @ops.get("/readyz", summary="The service can answer requests: its database is reachable (2 s at most)")
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ready = all(checks.values())
        headers = None if ready else {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503, headers=headers)

    @ops.get("/pipelinez", summary="The event pipeline works: Kafka, the outbox relay, every consumer's progress")
    async def pipelinez() -> JSONResponse:
        health = await runtime.pipeline()
        return JSONResponse(health, status_code=200 if health["healthy"] else 503)

    @ops.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics():
        await runtime.pipeline()  # firstline_pipeline_healthy as of this scrape
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
