"""The event pipeline against the real broker: outbox relay, inbox, dead letters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select
from sqlmodel import Field, SQLModel

from common import bus, envelope
from common.bus import Consumer
from common.errors import Invalid
from common.events.checkin import CheckInMissed
from common.runtime import Runtime
from common.settings import ServiceSettings
from support import TopicReader, kafka_client, wait_for

pytestmark = pytest.mark.kafka


class Tally(SQLModel, table=True):
    """What the test consumer does: count missed check-ins per resident."""

    __tablename__ = "test_tally"
    resident_id: str = Field(primary_key=True)
    missed: int = 0


async def on_missed(event: CheckInMissed, _envelope, uow) -> None:
    if event.resident_id == "poison":
        raise RuntimeError("this handler always fails for poison")
    if event.resident_id == "rejected":
        raise Invalid("resident unknown here")
    row = await uow.session.get(Tally, event.resident_id) or Tally(resident_id=event.resident_id)
    row.missed += 1
    uow.session.add(row)


def missed(resident_id: str, days: int = 1) -> CheckInMissed:
    return CheckInMissed(
        resident_id=resident_id, date=date(2026, 11, 21), consecutive_days=days, grid_id="G1", building_id="B1"
    )


async def new_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 3, 1) for n in names])
    finally:
        await admin.close()


def runtime_for(database_url: str, kafka: str, **overrides) -> Runtime:
    settings = ServiceSettings(
        service="pipetest",
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        jobs_interval_s=0,
        kafka_principal="operator",
        outbox_poll_interval_s=0.1,
        consumer_retry_backoff_s=0.01,
        consumer_max_attempts=3,
        **overrides,
    )
    return Runtime(settings)


async def test_relay_publishes_committed_events_in_order_with_the_envelope(database_url, kafka):
    runtime = runtime_for(database_url, kafka)
    async with TopicReader(kafka, CheckInMissed.topic) as reader:
        await runtime.start()
        try:
            resident = f"R-{uuid.uuid4().hex[:8]}"
            for days in range(1, 6):
                async with runtime.uow() as uow:
                    uow.emit(missed(resident, days))
                    await uow.commit()
            async with runtime.uow() as uow:  # rolled back: must never be published
                uow.emit(missed(resident, 99))
            await reader.wait_for_events("CheckInMissed", 5)
        finally:
            await runtime.stop()
    mine = [r for r in reader.records if r.key == resident.encode()]
    assert [json.loads(r.value)["data"]["consecutive_days"] for r in mine] == [1, 2, 3, 4, 5]
    assert len({r.partition for r in mine}) == 1  # one key, one partition: order kept
    headers = dict(mine[0].headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    event = json.loads(mine[0].value)
    assert event["specversion"] == "1.0" and event["source"] == "/firstline/checkin"
    assert event["subject"] == resident and event["type"] == "CheckInMissed"
    assert event["dataschema"] == "urn:firstline:checkin:CheckInMissed:1"
    assert datetime.fromisoformat(event["time"]).tzinfo is not None
    assert uuid.UUID(event["id"])


async def test_consumer_applies_once_dead_letters_what_it_cannot_and_carries_on(database_url, kafka):
    topic, dlq = f"test.events.{uuid.uuid4().hex[:8]}", f"test.dlq.{uuid.uuid4().hex[:8]}"
    await new_topics(kafka, topic, dlq)
    group = f"pipetest-{uuid.uuid4().hex[:6]}"
    runtime = runtime_for(database_url, kafka)
    runtime.consume(Consumer(name=group, topics=[topic], handlers={CheckInMissed: on_missed}, dead_letter_topic=dlq))

    def record(event) -> bytes:
        return envelope.encode(envelope.wrap(event, at=datetime.now(UTC)))

    good = record(missed("R-good"))
    unknown = json.loads(record(missed("R-x")))
    unknown["type"], unknown["dataschema"] = "SomethingElse", "urn:firstline:checkin:SomethingElse:1"
    missing = json.loads(record(missed("R-y")))
    del missing["data"]["grid_id"]
    messages = [
        good,
        b"\x00\xff garbage",
        b'{"not": "a cloudevent"}',
        json.dumps(unknown).encode(),
        json.dumps(missing).encode(),
        record(missed("poison")),
        record(missed("rejected")),
        good,  # a redelivery of the same event id
        record(missed("R-good")),  # a new event about the same resident
    ]
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
    await producer.start()
    async with TopicReader(kafka, dlq) as dead:
        try:
            for value in messages:
                await producer.send_and_wait(topic, value, key=b"k")
            await runtime.start()

            async def tally() -> int:
                async with runtime.db.session() as session:
                    row = await session.get(Tally, "R-good")
                    return row.missed if row else 0

            await wait_for(lambda: tally(), what="R-good applied")
            await wait_for(lambda: _count(dead, 6), what="6 dead letters")
            await wait_for(lambda: _tally_is(tally, 2), what="R-good applied exactly twice")
        finally:
            await producer.stop()
            await runtime.stop()
    kinds = {dict(r.headers)[bus.H_KIND].decode(): dict(r.headers) for r in dead.records}
    assert set(kinds) == {"unparsable", "invalid-envelope", "unknown-type", "invalid-payload", "failed", "rejected"}
    assert b"grid_id" in kinds["invalid-payload"][bus.H_REASON]
    assert b"failed after 3 attempts" in kinds["failed"][bus.H_REASON]
    origin = kinds["unparsable"]
    assert origin[bus.H_TOPIC] == topic.encode() and origin[bus.H_OFFSET] == b"1"
    assert [r.value for r in dead.records if dict(r.headers)[bus.H_KIND] == b"unparsable"] == [b"\x00\xff garbage"]

    # Replaying the whole topic from its beginning changes nothing.
    replay = runtime_for(database_url, kafka, migrate_on_start=False)
    replay.consume(Consumer(name=group, topics=[topic], handlers={CheckInMissed: on_missed}, dead_letter_topic=dlq))
    runner = replay.runners[0]
    from aiokafka import AIOKafkaConsumer

    reader = AIOKafkaConsumer(
        topic, **kafka_client(bootstrap_servers=kafka), group_id=None, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        records = []
        while len(records) < len(messages):
            for batch in (await reader.getmany(timeout_ms=500)).values():
                records.extend(batch)
        await replay.db.create_all()
        valid = [r for r in records if r.value in (good,) or b"R-good" in (r.value or b"")]
        await runner.handle(valid)
    finally:
        await reader.stop()
    async with replay.db.session() as session:
        assert (await session.get(Tally, "R-good")).missed == 2
    await replay.db.dispose()


async def _count(reader: TopicReader, n: int) -> bool:
    await reader.poll()
    return len(reader.records) >= n


async def _tally_is(tally, n: int) -> bool:
    return await tally() == n


async def test_events_committed_while_kafka_is_unreachable_arrive_once_it_is(database_url, kafka):
    """The 2xx promise: committed events wait in the outbox and go out, once, when Kafka is back.
    (The end-to-end suite does this by stopping the real broker.)"""
    offline = runtime_for(database_url, "127.0.0.1:1")  # nothing listens there
    await offline.start()
    resident = f"R-{uuid.uuid4().hex[:8]}"
    try:
        for days in (1, 2, 3):
            async with offline.uow() as uow:
                uow.emit(missed(resident, days))
                await uow.commit()
        async with offline.db.session() as session:
            from common.outbox import OutboxMessage

            assert await session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) == 3
    finally:
        await offline.stop()
    online = runtime_for(database_url, kafka, migrate_on_start=False)
    async with TopicReader(kafka, CheckInMissed.topic) as reader:
        await online.start()
        try:
            await wait_for(lambda: _keyed(reader, resident, 3), what="3 events after reconnecting")
            assert await online.relay.publish_pending() == 0  # all marked sent: nothing twice
        finally:
            await online.stop()
    assert len([r for r in reader.records if r.key == resident.encode()]) == 3


async def _keyed(reader: TopicReader, key: str, n: int) -> bool:
    await reader.poll()
    return len([r for r in reader.records if r.key == key.encode()]) >= n
