from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import ConsumerRecord

from common import envelope as ce
from common.clock import ManualClock
from common.events.base import Event
from common.events.checkin import ResidentRegistered
from dispatch.main import create_app
from dispatch.settings import DispatchSettings
from support import AppHarness, serving

START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
DEPOT = (31.2304, 121.4737)


class Harness(AppHarness):
    """The dispatch app in-process, with a manual clock, tokens, the outbox to inspect and
    events fed to its consumer as Kafka would deliver them."""

    def __init__(self, app, clock: ManualClock, client: httpx.AsyncClient) -> None:
        super().__init__(app, clock, client)
        self.offset = 0

    @property
    def dispatcher(self) -> dict[str, str]:
        return self.as_("dispatcher", "dispatcher-1")

    async def deliver(self, *events: Event, envelopes: list[ce.CloudEvent] | None = None) -> list[ce.CloudEvent]:
        """Hand events to the consumer as one Kafka batch (redelivery: pass `envelopes`)."""
        envelopes = envelopes or [ce.wrap(e, at=self.clock.now()) for e in events]
        records = []
        for envelope in envelopes:
            self.offset += 1
            value = ce.encode(envelope)
            records.append(
                ConsumerRecord(
                    "test.topic", 0, self.offset, 0, 0, envelope.subject.encode(), value, None, 0, len(value), ()
                )
            )
        await self.runtime.runners[0].handle(records)
        return envelopes

    async def resident(self, resident_id: str, tags=(), lat=31.2320, lon=121.4750, building="B01", grid="G1") -> str:
        await self.deliver(
            ResidentRegistered(
                resident_id=resident_id,
                community_id="C1",
                grid_id=grid,
                building_id=building,
                tags=list(tags),
                name=f"Resident {resident_id}",
                phone="13800000000",
                unit="1",
                room="101",
                lat=lat,
                lon=lon,
            )
        )
        return resident_id

    async def volunteer(self, name: str, group: str = "errands", lat=31.2310, lon=121.4740, capacity=5, **extra) -> str:
        body = {
            "name": name,
            "group": group,
            "lat": lat,
            "lon": lon,
            "capacity": capacity,
            "phone": "13900000000",
            **extra,
        }
        response = await self.client.post("/volunteers", json=body, headers=self.dispatcher)
        assert response.status_code == 201, response.text
        return response.json()["volunteer_id"]

    async def raise_(self, resident_id: str, category: str = "groceries", expect: int = 201, **extra) -> dict:
        body = {"resident_id": resident_id, "category": category, "details": "rice and eggs", **extra}
        response = await self.client.post("/requests", json=body, headers=self.as_("resident", resident_id))
        assert response.status_code == expect, response.text
        return response.json()

    async def get(self, request_id: str) -> dict:
        response = await self.client.get(f"/requests/{request_id}", headers=self.dispatcher)
        assert response.status_code == 200, response.text
        return response.json()


def settings_for(database_url: str, **overrides) -> DispatchSettings:
    values = dict(
        database_url=database_url,
        jobs_interval_s=0,
        kafka_enabled=False,
        depot_lat=DEPOT[0],
        depot_lon=DEPOT[1],
        plan_time_limit_s=1.0,
    )
    values.update(overrides)
    return DispatchSettings(**values)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def dispatch(database_url, clock) -> AsyncIterator[Harness]:
    app = create_app(settings_for(database_url, start_consumers=False), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client)) as harness:
        yield harness
