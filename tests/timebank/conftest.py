from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from common.clock import ManualClock
from support import AppHarness, serving
from timebank.main import create_app
from timebank.settings import TimebankSettings

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class Harness(AppHarness):
    """The time bank in-process, with a manual clock, tokens and the outbox to inspect."""

    @property
    def staff(self) -> dict[str, str]:
        return self.as_("command", "staff-1")

    async def member(self, member_id: str, kind: str = "volunteer", name: str | None = None) -> str:
        body = {"member_id": member_id, "name": name or member_id, "kind": kind}
        response = await self.client.post("/members", json=body, headers=self.staff)
        assert response.status_code == 201, response.text
        return member_id

    async def credit(self, member_id: str, hours: float, activity: str = "publicity") -> dict:
        body = {"member_id": member_id, "hours": hours, "activity": activity, "reason": "publicity shift"}
        response = await self.client.post("/credits", json=body, headers=self.staff)
        assert response.status_code == 201, response.text
        return response.json()

    async def balance(self, member_id: str) -> dict:
        response = await self.client.get(f"/members/{member_id}/balance", headers=self.staff)
        assert response.status_code == 200, response.text
        return response.json()

    async def audit(self) -> dict:
        response = await self.client.get("/ledger/audit", headers=self.staff)
        assert response.status_code == 200, response.text
        return response.json()


def settings_for(database_url: str, **overrides) -> TimebankSettings:
    return TimebankSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False, **overrides)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def timebank(database_url, clock) -> AsyncIterator[Harness]:
    app = create_app(settings_for(database_url), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client)) as harness:
        yield harness
