from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import ConsumerRecord
from sqlmodel import select

from command.main import create_app
from command.settings import CommandSettings
from common import envelope as ce
from common.clock import ManualClock
from common.events.base import Event, event_class
from common.outbox import OutboxMessage
from support import AppHarness, serving

START = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: the check-in cutoff
_offsets = itertools.count()


class Harness(AppHarness):
    """The command app in-process, with a manual clock, tokens, events fed to its consumer
    as Kafka records, and the outbox to inspect."""

    def __init__(self, app, clock: ManualClock, client: httpx.AsyncClient) -> None:
        super().__init__(app, clock, client)
        self.runner = self.runtime.runners[0]

    @property
    def staff(self) -> dict[str, str]:
        return self.as_("command", "cmd-duty")

    @property
    def admin(self) -> dict[str, str]:
        return self.as_("admin", "admin-1")

    def envelope(self, event: Event) -> ce.CloudEvent:
        return ce.wrap(event, at=self.clock.now())

    async def deliver(self, *items: Event | ce.CloudEvent | bytes) -> list[ce.CloudEvent]:
        """Hand events to the consumer as one batch of Kafka records, as the broker would."""
        records, envelopes = [], []
        for item in items:
            if isinstance(item, Event):
                item = self.envelope(item)
            topic = "checkin.events.v1"
            if isinstance(item, ce.CloudEvent):
                envelopes.append(item)
                value = ce.encode(item)
                key = item.subject.encode()
                known = event_class(item.type, item.version)
                topic = known.topic if known else topic  # on its own topic, or the consumer distrusts it
            else:
                value, key = item, b"garbage"
            records.append(ConsumerRecord(topic, 0, next(_offsets), 0, 0, key, value, None, len(key), len(value), []))
        await self.runner.handle(records)
        return envelopes

    async def outbox(self, event_type: str | None = None, topic: str | None = None) -> list[dict]:
        async with self.runtime.db.session() as session:
            rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars().all()
        return [
            json.loads(r.value)
            for r in rows
            if (event_type is None or r.event_type == event_type) and (topic is None or r.topic == topic)
        ]

    async def tickets(self, headers=None, **params) -> list[dict]:
        response = await self.client.get("/tickets", params=params, headers=headers or self.staff)
        assert response.status_code == 200, response.text
        return response.json()


def settings_for(database_url: str, **overrides) -> CommandSettings:
    return CommandSettings(
        database_url=database_url, jobs_interval_s=0, kafka_enabled=False, start_consumers=False, **overrides
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def command(database_url, clock) -> AsyncIterator[Harness]:
    app = create_app(settings_for(database_url), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client)) as harness:
        yield harness
