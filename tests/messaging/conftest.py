from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import ConsumerRecord
from local_gateway import LocalGateway
from sqlmodel import select

from common import envelope as ce
from common.clock import ManualClock
from common.events.base import Event
from common.events.checkin import ResidentRegistered
from messaging.gateway import sign
from messaging.main import create_app
from messaging.models import Message
from messaging.settings import MessagingSettings
from support import AppHarness, serving

START = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SECRET = "test-gateway-secret-of-some-length-0123456789"
_offsets = itertools.count()


class Harness(AppHarness):
    """Messaging in-process, with a manual clock, a real local gateway, events fed to its
    consumer as Kafka records, and its record to inspect."""

    def __init__(self, app, clock: ManualClock, client: httpx.AsyncClient, gateway: LocalGateway) -> None:
        super().__init__(app, clock, client)
        self.gateway = gateway
        self.runner = self.runtime.runners[0]

    @property
    def staff(self) -> dict[str, str]:
        return self.as_("command", "cmd-duty")

    async def deliver(self, *items: Event | ce.CloudEvent) -> list[ce.CloudEvent]:
        """Hand events to the consumer as one batch of Kafka records, as the broker would."""
        records, envelopes = [], []
        for item in items:
            envelope = item if isinstance(item, ce.CloudEvent) else ce.wrap(item, at=self.clock.now())
            envelopes.append(envelope)
            value, key = ce.encode(envelope), envelope.subject.encode()
            records.append(ConsumerRecord("t", 0, next(_offsets), 0, 0, key, value, None, len(key), len(value), []))
        await self.runner.handle(records)
        return envelopes

    async def resident(self, resident_id: str, phone: str, tags: tuple[str, ...] = (), grid_id: str = "G1") -> str:
        await self.deliver(ResidentRegistered(resident_id=resident_id, community_id="C1", grid_id=grid_id, building_id="B01",
                                              tags=list(tags), name="王芳", phone=phone))  # fmt: skip
        return resident_id

    async def messages(self, **filters) -> list[Message]:
        async with self.runtime.db.session() as session:
            query = select(Message).order_by(Message.created_at, Message.message_id)
            for name, value in filters.items():
                query = query.where(getattr(Message, name) == value)
            return list((await session.execute(query)).scalars())

    async def reply(
        self, text: str, sender: str, reply_id: str, channel: str = "sms", secret: str = SECRET
    ) -> httpx.Response:
        body = json.dumps({"message_id": reply_id, "from": sender, "text": text}, ensure_ascii=False).encode()
        stamp = int(datetime.now(UTC).timestamp())
        headers = {"content-type": "application/json", "webhook-id": f"in-{reply_id}", "webhook-timestamp": str(stamp),
                   "webhook-signature": sign(secret, f"in-{reply_id}", stamp, body)}  # fmt: skip
        return await self.client.post(f"/inbound/{channel}", content=body, headers=headers)


def settings_for(database_url: str, gateway: LocalGateway, **overrides) -> MessagingSettings:
    urls = {"sms_url": gateway.url("sms"), "voice_url": gateway.url("voice"), "chat_url": gateway.url("chat")}
    defaults = {"jobs_interval_s": 0, "kafka_enabled": False, "start_consumers": False, "gateway_secret": SECRET,
                "send_retry_backoff_s": 0, **urls}  # fmt: skip
    return MessagingSettings(database_url=database_url, **{**defaults, **overrides})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def gateway() -> AsyncIterator[LocalGateway]:
    async with LocalGateway(SECRET) as running:
        yield running


@pytest.fixture
async def messaging(database_url, clock, gateway) -> AsyncIterator[Harness]:
    app = create_app(settings_for(database_url, gateway), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client, gateway)) as harness:
        yield harness
