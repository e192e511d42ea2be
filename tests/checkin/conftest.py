from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock
from support import AppHarness, serving

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class Harness(AppHarness):
    """The check-in app in-process, with a manual clock, tokens and the outbox to inspect."""

    @property
    def admin(self) -> dict[str, str]:
        return self.as_("admin", "admin-1")

    async def register(self, name: str, room: str, grid: str = "G1", building: str = "B01", **extra) -> str:
        body = {
            "name": name,
            "phone": "13800000000",
            "grid_id": grid,
            "building_id": building,
            "unit": "1",
            "room": room,
            **extra,
        }
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
        async with serving(app, lambda client: Harness(app, clock, client)) as harness:
            yield harness

    return make


@pytest.fixture
async def checkin(checkin_app) -> AsyncIterator[Harness]:
    async with checkin_app() as harness:
        yield harness
