"""Dispatch against the real broker: it learns residents and applies time-bank and supplies
events from Kafka, ignores redelivery and other services' events, dead-letters garbage to
dispatch.dlq.v1, and its outbox reaches dispatch.events.v1."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common import envelope as ce
from common.bus import H_REASON, H_TOPIC
from common.events.checkin import CheckInSubmitted, ResidentRegistered
from common.events.supplies import ReservationLine, StockReserved
from common.events.timebank import HoursRedeemed
from common.topics import CHECKIN_EVENTS, CHECKIN_RESIDENTS, DISPATCH_EVENTS, SUPPLIES_EVENTS, TIMEBANK_EVENTS, dlq
from conftest import Harness, settings_for
from dispatch.main import create_app
from support import TopicReader, kafka_client, unique, wait_for

pytestmark = pytest.mark.kafka
TOPICS = (CHECKIN_RESIDENTS, SUPPLIES_EVENTS, TIMEBANK_EVENTS)


async def start_group_at_end(bootstrap: str, group: str) -> None:
    """A new consumer group that starts where the topics end now: the test reads what it
    sends, not the history other tests left on the shared broker."""
    consumer = AIOKafkaConsumer(**kafka_client(bootstrap_servers=bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(t, p) for t in TOPICS for p in consumer.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit({tp: offset for tp, offset in ends.items()})
    finally:
        await consumer.stop()


@pytest.fixture
async def live(kafka, tmp_path, clock) -> AsyncIterator[Harness]:
    group = unique("dispatch-test")
    await start_group_at_end(kafka, group)
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path}/dispatch.db",
        kafka_enabled=True,
        kafka_bootstrap_servers=kafka,
        consumer_group=group,
        outbox_poll_interval_s=0.1,
        consumer_retry_backoff_s=0.01,
    )
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dispatch") as client:
            harness = Harness(app, clock, client)
            await wait_for(lambda: harness.runtime.broker_connected, what="dispatch to connect to Kafka")
            yield harness


@pytest.fixture
async def producer(kafka) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka), enable_idempotence=True)
    await producer.start()
    yield producer
    await producer.stop()


async def test_applies_real_events_ignores_redelivery_and_dead_letters_garbage(live, producer):
    resident, volunteer_name = unique("R"), unique("V")
    volunteer = await live.volunteer(volunteer_name)

    async def send(topic: str, value: bytes, key: bytes) -> None:
        await producer.send_and_wait(
            topic, value, key=key, partition=0, headers=[("content-type", ce.CONTENT_TYPE.encode())]
        )

    def wrap(event):
        return ce.wrap(event, at=live.clock.now())

    registered = ResidentRegistered(
        resident_id=resident,
        community_id="C1",
        grid_id="G1",
        building_id="B01",
        tags=["elderly"],
        lat=31.2320,
        lon=121.4750,
    )
    await send(CHECKIN_RESIDENTS, ce.encode(wrap(registered)), resident.encode())

    async def known():
        try:
            return await live.client.post(
                "/requests",
                json={"resident_id": resident, "category": "groceries", "items": [{"item_id": "rice", "quantity": 1}]},
                headers=live.as_("resident", resident),
            )
        except Exception:  # noqa: BLE001
            return None

    async def raised_for_resident():
        response = await known()
        return response if response is not None and response.status_code == 201 else None

    request = (await wait_for(raised_for_resident, what="the resident learnt from checkin.residents.v1")).json()
    assert request["status"] == "awaiting_stock"

    async with (
        TopicReader(live.runtime.settings.kafka_bootstrap_servers, dlq("dispatch")) as dead,
        TopicReader(live.runtime.settings.kafka_bootstrap_servers, DISPATCH_EVENTS) as published,
    ):
        redemption_request = unique("TB")
        redeemed = wrap(
            HoursRedeemed(
                member_id=unique("M"),
                hours=1,
                reason="groceries",
                request_id=redemption_request,
                redemption_id=unique("RD"),
                for_member_id=resident,
                purpose="groceries",
            )
        )
        await send(TIMEBANK_EVENTS, ce.encode(redeemed), redeemed.subject.encode())
        await send(TIMEBANK_EVENTS, ce.encode(redeemed), redeemed.subject.encode())  # redelivered: same event id
        other = wrap(
            CheckInSubmitted(resident_id=resident, date=live.clock.now().date(), temperature_c=36.6, channel="self")
        )
        await send(CHECKIN_EVENTS, ce.encode(other), resident.encode())  # not ours: ignored
        garbage_key = uuid.uuid4().hex.encode()
        await send(SUPPLIES_EVENTS, b"\x00not json at all", garbage_key)
        reserved = wrap(
            StockReserved(request_id=request["request_id"], lines=[ReservationLine(item_id="rice", quantity=1)])
        )
        await send(SUPPLIES_EVENTS, ce.encode(reserved), request["request_id"].encode())

        async def both_assigned():
            mine = [r for r in await live.service.requests(resident_id=resident) if r.status == "assigned"]
            return mine if len(mine) == 2 else None

        assigned = await wait_for(both_assigned, what="the reserved and the redeemed requests assigned")
        assert {r.request_id for r in assigned} == {request["request_id"], redemption_request}
        assert all(r.volunteer_id == volunteer for r in assigned)

        async def dead_lettered():
            await dead.poll()
            return [r for r in dead.records if r.key == garbage_key]

        [letter] = await wait_for(dead_lettered, what="the garbage on dispatch.dlq.v1")
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers[H_TOPIC] == SUPPLIES_EVENTS and "not JSON" in headers[H_REASON]

        async def published_for_resident():
            await published.poll()
            return [e for e in published.events("RequestRaised") if e["subject"] == redemption_request]

        found = await wait_for(published_for_resident, what="RequestRaised on dispatch.events.v1")
        # Delivery is at least once (consumers dedupe on the id): one event, maybe delivered twice.
        [from_redemption] = list({e["id"]: e for e in found}.values())
        assert from_redemption["causationid"] == redeemed.id and from_redemption["data"]["source"] == "timebank"
    assert len(await live.outbox("RequestRaised")) == 2  # the redelivery raised nothing
