from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock
from common.outbox import OutboxMessage
from sqlmodel import select
from support import bearer

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class Harness:
    """The check-in app in-process, with a manual clock, tokens and the outbox to inspect."""

    def __init__(self, app, clock: ManualClock, client: httpx.AsyncClient) -> None:
        self.app = app
        self.clock = clock
        self.client = client
        self.service = app.state.service
        self.runtime = app.state.runtime
        self.secret = app.state.jwt_secret

    def as_(self, role: str, sub: str = "someone", **scopes) -> dict[str, str]:
        # Tokens are checked against the real time, not the test's clock.
        return bearer(self.secret, role, sub, datetime.now(UTC), **scopes)

    @property
    def admin(self) -> dict[str, str]:
        return self.as_("admin", "admin-1")

    async def outbox(self, event_type: str | None = None) -> list[dict]:
        import json

        async with self.runtime.db.session() as session:
            rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars().all()
        events = [json.loads(r.value) for r in rows]
        return [e for e in events if event_type is None or e["type"] == event_type]

    async def register(self, name: str, room: str, grid: str = "G1", building: str = "B01", **extra) -> str:
        body = {"name": name, "phone": "13800000000", "grid_id": grid, "building_id": building, "unit": "1", "room": room, **extra}
        response = await self.client.post("/residents", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return response.json()["resident_id"]


def settings_for(database_url: str, **overrides) -> CheckinSettings:
    return CheckinSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False, **overrides)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def checkin_app(database_url, clock):
    """Make the app with settings of the test's choosing: `async with checkin_app(**overrides) as harness`."""

    @asynccontextmanager
    async def make(**overrides) -> AsyncIterator[Harness]:
        app = create_app(settings_for(database_url, **overrides), clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://checkin") as client:
                yield Harness(app, clock, client)

    return make


@pytest.fixture
async def checkin(checkin_app) -> AsyncIterator[Harness]:
    async with checkin_app() as harness:
        yield harness
