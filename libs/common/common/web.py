"""The HTTP side every service shares: app factory with lifespan, health, readiness,
metrics, AsyncAPI, documentation pages, and one error format (`{"detail": "..."}`) for bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from common import logs
from common.errors import DomainError
from common.metrics import HttpMetrics, exposition
from common.runtime import Runtime

DOCS_ASSETS = Path(__file__).parent / "static" / "docs"
DOCS_ASSETS_PATH = "/docs/assets"


def create_http_app(
    runtime: Runtime,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    state: dict[str, Any] | None = None,
) -> FastAPI:
    settings = runtime.settings
    logs.configure(settings.service, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

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
        docs_url=None,  # served below from the deployment's own files, not a CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.jwt_secret = settings.jwt_secret
    for name, value in (state or {}).items():
        setattr(app.state, name, value)
    app.add_middleware(HttpMetrics, registry=runtime.registry, service=settings.service)

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, **exc.details}, status_code=exc.status_code)

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

    # The routes join the app's own table instead of `include_router`, whose nested matcher
    # walks them again on every request (docs/performance.md); our routers have no prefix or
    # dependencies, so their routes are complete as they are. The service's own come first:
    # Starlette tries routes in order, and each miss costs a regular-expression match.
    app.router.routes[:0] = [route for router in routers for route in router.routes]
    app.router.routes.extend(ops.routes)
    _add_docs(app, title)
    return app


def _add_docs(app: FastAPI, title: str) -> None:
    """`/docs` and `/redoc` with Swagger UI's and ReDoc's files served by the service itself:
    intranets and mainland networks often cannot reach the CDNs FastAPI's defaults load from."""
    docs = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect = "/docs/oauth2-redirect"

    @docs.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
        )

    @docs.get(oauth2_redirect)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @docs.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
            with_google_fonts=False,
        )

    app.router.routes.extend(docs.routes)
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
