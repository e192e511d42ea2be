"""The portal with the services it calls, in-process: its calls reach the services' apps
over ASGI (a transport that routes by host), each service on its own database.

The fixtures of tests/portal and tests/portal_ops (their conftest.py import them). The two
are separate groups, each run in its own process, because command and dispatch both have a
`known_resident` table in SQLModel's one metadata: tests/portal may load command,
tests/portal_ops loads dispatch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import httpx
import pytest

from checkin.main import create_app as checkin_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock
from portal.main import create_app as portal_app
from portal.settings import PortalSettings
from support import AppHarness, bearer
from timebank.main import create_app as timebank_app
from timebank.settings import TimebankSettings

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, before the cutoff


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request to the app named by its host (http://checkin/... -> checkin)."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no service at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


class Portal:
    """The portal as a browser sees it (cookies kept), and the check-in service behind it."""

    def __init__(self, portal, checkin: AppHarness, transport: RoutingTransport) -> None:
        self.app = portal
        self.checkin = checkin
        self.transport = transport
        self.service = portal.state.portal

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://portal", follow_redirects=False
        )

    async def register(self, name: str, room: str, building: str = "B01", unit: str = "1", grid: str = "G1") -> str:
        body = {
            "name": name,
            "phone": "13800000000",
            "grid_id": grid,
            "building_id": building,
            "unit": unit,
            "room": room,
        }
        response = await self.checkin.client.post("/residents", json=body, headers=bearer("admin", "admin-1"))
        assert response.status_code == 201, response.text
        return response.json()["resident_id"]

    async def household_link(self, household_id: str, renew: bool = False) -> str:
        async with self.browser() as client:
            response = await client.post(
                f"/admin/households/{household_id}/link", json={"renew": renew}, headers=bearer("admin", "admin-1")
            )
        assert response.status_code == 200, response.text
        return response.json()["url"]

    async def invite(self, role: str, sub: str, **body) -> str:
        async with self.browser() as client:
            response = await client.post(
                "/admin/invitations", json={"role": role, "sub": sub, **body}, headers=bearer("admin", "admin-1")
            )
        assert response.status_code == 201, response.text
        return response.json()["url"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def portal(tmp_path, clock, database_url) -> AsyncIterator[Portal]:
    """The portal on SQLite and PostgreSQL (`database_url`); the services behind it on SQLite."""
    quiet = dict(jobs_interval_s=0, kafka_enabled=False)
    checkin = checkin_app(
        CheckinSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db", **quiet), clock=clock
    )
    timebank = timebank_app(
        TimebankSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/timebank.db", start_consumers=False, **quiet),
        clock=clock,
    )
    transport = RoutingTransport({"checkin": checkin, "timebank": timebank})
    app = portal_app(
        PortalSettings(
            database_url=database_url,
            public_url="http://portal",
            checkin_url="http://checkin",
            timebank_url="http://timebank",
            supplies_url="http://supplies",
            dispatch_url="http://dispatch",
            command_url="http://command",
            messaging_url="http://messaging",
            jobs_interval_s=0,
            live_updates=False,  # no broker behind these apps: tests/portal/browser hears live updates
        ),
        clock=clock,
        transport=transport,
    )
    async with AsyncExitStack() as stack:
        for each in (checkin, timebank, app):
            await stack.enter_async_context(each.router.lifespan_context(each))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=checkin), base_url="http://checkin")
        )
        yield Portal(app, AppHarness(checkin, clock, client), transport)
