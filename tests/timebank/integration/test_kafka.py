"""The time bank against the real broker: it applies dispatch's events from Kafka, ignores
redelivery, dead-letters garbage to timebank.dlq.v1, and its outbox reaches Kafka."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from common import envelope as ce
from common.bus import H_REASON, H_TOPIC
from common.events.dispatch import RequestCancelled, RequestFulfilled, RequestRaised
from common.topics import DISPATCH_EVENTS, TIMEBANK_EVENTS, dlq
from conftest import Harness
from support import TopicReader, kafka_client, unique, wait_for
from timebank.main import create_app
from timebank.settings import TimebankSettings

pytestmark = pytest.mark.kafka


@pytest.fixture
async def live(kafka, tmp_path, clock) -> AsyncIterator[Harness]:
    settings = TimebankSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/timebank.db",
        kafka_bootstrap_servers=kafka,
        consumer_group=unique("timebank-test"),  # a group of its own: the stack's offsets stay untouched
        jobs_interval_s=0,
        outbox_poll_interval_s=0.1,
    )
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://timebank") as client:
            harness = Harness(app, clock, client)
            await wait_for(lambda: harness.runtime.broker_connected, what="the time bank to connect to Kafka")
            yield harness


@pytest.fixture
async def producer(kafka) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka), enable_idempotence=True)
    await producer.start()
    yield producer
    await producer.stop()


def raised(request_id: str, live) -> ce.CloudEvent:
    event = RequestRaised(
        request_id=request_id,
        resident_id="R1",
        category="groceries",
        priority="normal",
        due_by=live.clock.now() + timedelta(hours=4),
    )
    return ce.wrap(event, at=live.clock.now())


async def test_consumes_real_events_ignores_redelivery_and_dead_letters_garbage(live, producer):
    volunteer, sentinel = unique("V"), unique("V")
    request_id = unique("REQ")
    fulfilled = ce.wrap(
        RequestFulfilled(request_id=request_id, volunteer_id=volunteer, service_minutes=60), at=live.clock.now()
    )
    garbage_key = uuid.uuid4().hex.encode()

    async def send(value: bytes, key: bytes) -> None:
        # One partition, so the sentinel is applied only after everything sent before it.
        await producer.send_and_wait(
            DISPATCH_EVENTS, value, key=key, partition=0, headers=[("content-type", ce.CONTENT_TYPE.encode())]
        )

    async with (
        TopicReader(live.runtime.settings.kafka_bootstrap_servers, dlq("timebank")) as dead,
        TopicReader(live.runtime.settings.kafka_bootstrap_servers, TIMEBANK_EVENTS) as published,
    ):
        await send(ce.encode(raised(request_id, live)), request_id.encode())  # only raised requests earn
        await send(ce.encode(fulfilled), request_id.encode())
        await send(ce.encode(fulfilled), request_id.encode())  # redelivered: same event id
        await send(b"\x00not json at all", garbage_key)
        last_request = unique("REQ")
        last = ce.wrap(
            RequestFulfilled(request_id=last_request, volunteer_id=sentinel, service_minutes=30), at=live.clock.now()
        )
        await send(ce.encode(raised(last_request, live)), b"sentinel")
        await send(ce.encode(last), b"sentinel")

        async def sentinel_credited() -> bool:
            try:
                return (await live.service.balance(sentinel))["hours"] == 0.5
            except Exception:  # noqa: BLE001 - not opened yet
                return False

        await wait_for(sentinel_credited, what="the sentinel's credit")
        assert (await live.service.balance(volunteer))["hours"] == 1.0  # once, not twice

        async def dead_lettered():
            await dead.poll()
            return [r for r in dead.records if r.key == garbage_key]

        [letter] = await wait_for(dead_lettered, what="the garbage on timebank.dlq.v1")
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers[H_TOPIC] == DISPATCH_EVENTS
        assert "not JSON" in headers[H_REASON]

        async def credits_published():
            await published.poll()
            return [e for e in published.events("HoursCredited") if e["subject"] in (volunteer, sentinel)]

        events = await wait_for(lambda: _both(credits_published), what="HoursCredited on timebank.events.v1")
        assert sorted(e["subject"] for e in events) == sorted([volunteer, sentinel])
        [mine] = [e for e in events if e["subject"] == volunteer]
        assert mine["data"]["request_id"] == request_id
        assert mine["causationid"] == fulfilled.id


async def _both(fetch):
    events = await fetch()
    return events if len(events) >= 2 else None


async def test_a_redemption_reaches_kafka_and_a_cancellation_from_kafka_refunds_it(live, producer):
    member = unique("V")
    await live.member(member)
    await live.credit(member, 2)
    async with TopicReader(live.runtime.settings.kafka_bootstrap_servers, TIMEBANK_EVENTS) as published:
        response = await live.client.post(
            "/redemptions",
            json={"member_id": member, "hours": 1.5, "purpose": "groceries"},
            headers=live.as_("volunteer", member),
        )
        assert response.status_code == 201, response.text
        redemption = response.json()

        async def redeemed():
            await published.poll()
            return [e for e in published.events("HoursRedeemed") if e["subject"] == member]

        [event] = await wait_for(redeemed, what="HoursRedeemed on Kafka")
        assert event["data"]["request_id"] == redemption["request_id"]

        cancelled = RequestCancelled(
            request_id=redemption["request_id"], reason="no stock", redemption_id=redemption["redemption_id"]
        )
        await producer.send_and_wait(
            DISPATCH_EVENTS, ce.encode(ce.wrap(cancelled, at=live.clock.now())), key=redemption["request_id"].encode()
        )

        async def refunded() -> bool:
            return (await live.service.balance(member))["hours"] == 2.0

        await wait_for(refunded, what="the refund")

        async def refund_published():
            await published.poll()
            return [e for e in published.events("HoursRefunded") if e["subject"] == member]

        [refund] = await wait_for(refund_published, what="HoursRefunded on Kafka")
        assert refund["data"]["redemption_id"] == redemption["redemption_id"]
