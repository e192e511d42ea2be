"""`/docs` (Swagger UI) and `/redoc` with their scripts and styles served by the service
itself: intranets and mainland networks often cannot reach the CDNs FastAPI's defaults
load from. The files are vendored in `static/docs/` (see its README for versions)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = Path(__file__).parent / "static" / "docs"
DOCS_ASSETS_PATH = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def add_docs(app: FastAPI, title: str) -> None:
    """The two documentation pages and their assets, after the app's other routes."""
    docs = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"

    @docs.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
        )

    @docs.get(OAUTH2_REDIRECT)
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
