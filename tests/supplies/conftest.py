from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from common.clock import ManualClock
from supplies.main import create_app
from supplies.settings import SuppliesSettings
from support import AppHarness, serving

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class Harness(AppHarness):
    """The supplies app in-process, with a manual clock, tokens and the outbox to inspect."""

    @property
    def officer(self) -> dict[str, str]:
        return self.as_("supplies_officer", "officer-1")

    async def post(self, path: str, body: dict, expect: int = 201) -> dict:
        response = await self.client.post(path, json=body, headers=self.officer)
        assert response.status_code == expect, response.text
        return response.json()

    async def get(self, path: str, **params) -> dict | list:
        response = await self.client.get(path, params=params, headers=self.officer)
        assert response.status_code == 200, response.text
        return response.json()

    async def item(self, sku: str, **extra) -> str:
        body = {"sku": sku, "name": sku.title(), "unit": "box", "category": "protective", **extra}
        return (await self.post("/items", body))["item_id"]

    async def depot(self, name: str, **extra) -> str:
        body = {"name": name, "lat": 31.2, "lon": 121.4, **extra}
        return (await self.post("/depots", body))["depot_id"]

    async def receive(self, item_id: str, depot_id: str, quantity: float, **extra) -> dict:
        return await self.post(
            "/stock/receipts", {"item_id": item_id, "depot_id": depot_id, "quantity": quantity, **extra}
        )

    async def issue(self, item_id: str, depot_id: str, quantity: float, expect: int = 201) -> dict:
        return await self.post(
            "/stock/issues", {"item_id": item_id, "depot_id": depot_id, "quantity": quantity}, expect
        )

    async def position(self, item_id: str, depot_id: str) -> dict:
        stock = await self.get("/stock", item_id=item_id, depot_id=depot_id)
        return stock["stock"][0]


def settings_for(database_url: str, **overrides) -> SuppliesSettings:
    return SuppliesSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False, **overrides)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def supplies(database_url, clock) -> AsyncIterator[Harness]:
    app = create_app(settings_for(database_url), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client)) as harness:
        yield harness
