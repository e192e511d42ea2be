"""The shared HTTP app: where a service's routes sit, and FastAPI's OpenTelemetry switch."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import APIRouter
from opentelemetry import trace

from common.runtime import Runtime
from common.settings import ServiceSettings
from common.web import create_http_app


def app_for(tmp_path, **overrides):
    settings = ServiceSettings(service="webtest", database_url=f"sqlite+aiosqlite:///{tmp_path}/web.db", kafka_enabled=False,
                               jobs_interval_s=0, migrate_on_start=False, **overrides)  # fmt: skip
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        return {"thing_id": thing_id}

    return create_http_app(Runtime(settings), title="web test", description="", routers=[router])


async def get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.get(path)


async def test_service_routes_are_matched_before_operations_and_docs_which_still_answer(tmp_path):
    app = app_for(tmp_path)
    paths = [route.path for route in app.router.routes]
    assert paths[0] == "/things/{thing_id}" and paths.index("/healthz") > 0 and paths.index("/docs") > 0
    assert (await get(app, "/things/t-1")).json() == {"thing_id": "t-1"}
    assert (await get(app, "/healthz")).status_code == 200
    assert (await get(app, "/openapi.json")).json()["paths"].keys() >= {"/things/{thing_id}", "/healthz"}


@pytest.mark.parametrize(("setting", "lookups"), [(None, 0), ("true", 1)])
async def test_fastapi_opentelemetry_is_off_unless_asked_for(tmp_path, monkeypatch, setting, lookups):
    if setting:
        monkeypatch.setenv("FIRSTLINE_OPENTELEMETRY", setting)
    else:
        monkeypatch.delenv("FIRSTLINE_OPENTELEMETRY", raising=False)
    calls = []
    real = trace.get_tracer_provider
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: calls.append(1) or real())
    app = app_for(tmp_path)
    assert (await get(app, "/things/t-1")).status_code == 200
    assert (len(calls) >= 1) == bool(lookups)  # the per-request provider check happens only when on


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_documentation_pages_load_every_asset_from_the_service_itself(tmp_path, page):
    app = app_for(tmp_path)
    html = (await get(app, page)).text
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html), "the page names an outside host"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(assets) >= 2, html  # the script and its favicon (and Swagger UI's stylesheet)
    for asset in [*assets, "/openapi.json"]:
        response = await get(app, asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 500, asset


async def test_swagger_ui_oauth2_redirect_page_is_served(tmp_path):
    assert "oauth2" in (await get(app_for(tmp_path), "/docs/oauth2-redirect")).text
