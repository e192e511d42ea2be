"""A consumer trusts an event only on its own topic and from its own service, never wedges
on a record it cannot dead-letter whole, and waits out a database outage without losing or
dead-lettering anything (real broker; PostgreSQL behind a proxy that can be cut)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from common import bus, envelope, topics
from common.bus import Consumer
from common.events.base import Event
from common.events.checkin import CheckInMissed
from common.events.dispatch import RequestFulfilled
from common.events.supplies import StockOut
from common.events.timebank import HoursCredited
from common.outbox import InboxMessage
from common.runtime import Runtime
from common.settings import ServiceSettings
from support import TopicReader, kafka_client, unique, wait_for

CONTENT_TYPE = ("content-type", b"application/cloudevents+json")
# The broker's default message.max.bytes (the local broker does not change it).
BROKER_MAX_MESSAGE_BYTES = 1048588


def runtime_for(database_url: str, kafka: str, **overrides) -> Runtime:
    settings = ServiceSettings(
        service="origintest", database_url=database_url, kafka_bootstrap_servers=kafka, kafka_principal="operator",
        jobs_interval_s=0, consumer_retry_backoff_s=0.01, consumer_max_attempts=3, **overrides,
    )  # fmt: skip
    return Runtime(settings)


def record(topic: str, value: bytes, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 1, len(value), [CONTENT_TYPE])


def encoded(event: Event, **changes) -> bytes:
    wrapped = envelope.wrap(event, at=datetime.now(UTC))
    return envelope.encode(wrapped.model_copy(update=changes) if changes else wrapped)


def fulfilled(request_id: str) -> RequestFulfilled:
    return RequestFulfilled(request_id=request_id, volunteer_id="V-1", service_minutes=30)


async def test_an_event_on_the_wrong_topic_or_from_a_foreign_source_is_dead_lettered_untrusted(database_url, kafka):
    applied: list[str] = []

    async def on_fulfilled(event, _envelope, _uow) -> None:
        applied.append(event.request_id)

    runtime = runtime_for(database_url, kafka, start_consumers=False)
    dead_letters = topics.dlq("timebank")
    runner = runtime.consume(Consumer(name=unique("origintest"), topics=[topics.DISPATCH_EVENTS],
                                      handlers={RequestFulfilled: on_fulfilled}, dead_letter_topic=dead_letters))  # fmt: skip
    await runtime.start()
    try:
        await wait_for(lambda: runtime.broker_connected, what="connected")
        batch = [
            record(topics.TIMEBANK_EVENTS, encoded(fulfilled("RQ-wrong-topic")), 1),
            record(topics.DISPATCH_EVENTS, encoded(fulfilled("RQ-foreign"), source="/firstline/timebank"), 2),
            record(topics.DISPATCH_EVENTS, encoded(fulfilled("RQ-stranger"), source="https://evil.example"), 3),
            record(topics.DISPATCH_EVENTS, encoded(fulfilled("RQ-honest")), 4),
        ]
        async with TopicReader(kafka, dead_letters) as dead:
            await runner.handle(batch)
            await dead.wait_for_events("RequestFulfilled", 3)
    finally:
        await runtime.stop()
    assert applied == ["RQ-honest"]
    headers = [dict(r.headers) for r in dead.records]
    assert [h[bus.H_KIND] for h in headers] == [b"untrusted-origin"] * 3
    assert [h[bus.H_OFFSET] for h in headers] == [b"1", b"2", b"3"]
    assert all(h["content-type"] == CONTENT_TYPE[1] for h in headers)  # the original headers are kept
    assert b"does not travel on timebank.events.v1" in headers[0][bus.H_REASON]


HONEST: dict[str, Callable[[str], Event]] = {
    topics.CHECKIN_EVENTS: lambda i: CheckInMissed(
        resident_id=i, date=date(2026, 12, 1), consecutive_days=1, grid_id="G", building_id="B"
    ),
    topics.SUPPLIES_EVENTS: lambda i: StockOut(item_id=i, depot_id="D"),
    topics.DISPATCH_EVENTS: fulfilled,
    topics.TIMEBANK_EVENTS: lambda i: HoursCredited(member_id=i, hours=1, reason="test"),
}


async def test_a_record_too_large_to_dead_letter_whole_becomes_a_stub_and_the_consumer_moves_on(database_url, kafka):
    """On every topic a service consumes: the dead letter (value plus headers) of a record of
    the broker's maximum size cannot be published, so a stub with its digest is."""
    applied: list[str] = []

    async def on_event(event, _envelope, _uow) -> None:
        applied.append(event.subject())

    consumed = list(HONEST)
    dead_letters = topics.dlq("command")
    group = unique("sizetest")
    runtime = runtime_for(database_url, kafka)
    runtime.consume(Consumer(name=group, topics=consumed, handlers={type(HONEST[t]("x")): on_event for t in consumed},
                             dead_letter_topic=dead_letters))  # fmt: skip
    marker = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka), max_request_size=2 * BROKER_MAX_MESSAGE_BYTES,
                                max_batch_size=2 * BROKER_MAX_MESSAGE_BYTES)  # fmt: skip
    await producer.start()
    async with TopicReader(kafka, dead_letters) as dead:
        starts = {}
        for topic in consumed:  # the group starts at the current end: only this test's records
            async with TopicReader(kafka, topic) as reader:
                starts[topic] = reader.starts
        await _start_group_at(kafka, group, starts)
        try:
            huge = b"x" * (BROKER_MAX_MESSAGE_BYTES - 200)
            for topic in consumed:
                await producer.send_and_wait(topic, huge, key=marker.encode())
                await producer.send_and_wait(topic, encoded(HONEST[topic](f"{marker}-{topic}")), key=marker.encode(),
                                             headers=[CONTENT_TYPE])  # fmt: skip
            await runtime.start()
            await wait_for(lambda: len(applied) == len(consumed), timeout=60, what="the valid record after each")
            await wait_for(lambda: _poll_count(dead, len(consumed)), what="a stub per topic")
        finally:
            await producer.stop()
            await runtime.stop()
    assert sorted(applied) == sorted(HONEST[t](f"{marker}-{t}").subject() for t in consumed)
    stubs = [dict(r.headers) for r in dead.records]
    assert {s[bus.H_TOPIC].decode() for s in stubs} == set(consumed)
    assert all(bus.H_STUB in s and s[bus.H_DIGEST].startswith(b"sha256:") for s in stubs)
    assert all(r.value == b"" for r in dead.records)


async def _poll_count(reader: TopicReader, n: int) -> bool:
    await reader.poll()
    return len(reader.records) >= n


async def _start_group_at(kafka: str, group: str, starts: dict) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata

    consumer = AIOKafkaConsumer(**kafka_client(bootstrap_servers=kafka), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offsets = {tp: OffsetAndMetadata(o, "") for s in starts.values() for tp, o in s.items()}
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


class Proxy:
    """A TCP proxy to PostgreSQL that can be cut (every connection dropped, new ones refused)
    and restored on the same port: the database going away and coming back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


OUTAGE_S = 30.0  # as long as a PostgreSQL fail-over or restart


@pytest.mark.skipif(not os.environ.get("FIRSTLINE_TEST_PG_URL"), reason="needs PostgreSQL (FIRSTLINE_TEST_PG_URL)")
async def test_a_database_outage_during_a_sweep_dead_letters_nothing_and_loses_nothing(database_url, kafka):
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is PostgreSQL's")
    url = make_url(database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    topic, dead_letters = f"outage.events.{uuid.uuid4().hex[:8]}", f"outage.dlq.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1), NewTopic(dead_letters, 1, 1)])
    finally:
        await admin.close()

    count = 3000
    runtime = runtime_for(proxied, kafka, consumer_max_records=100)
    name = unique("outagetest")

    async def on_missed(_event, _envelope, _uow) -> None:
        return None  # the inbox row, in the same transaction, is the effect

    runner = runtime.consume(Consumer(name=name, topics=[topic], handlers={CheckInMissed: on_missed},
                                      dead_letter_topic=dead_letters))  # fmt: skip
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka), linger_ms=5)
    await producer.start()

    async def applied() -> int:
        async with runtime.db.session() as session:
            return await session.scalar(
                select(func.count()).select_from(InboxMessage).where(InboxMessage.consumer == name)
            )

    async with TopicReader(kafka, dead_letters) as dead:
        try:
            for i in range(count):
                event = CheckInMissed(
                    resident_id=f"R-{i}", date=date(2026, 12, 1), consecutive_days=1, grid_id="G", building_id="B"
                )
                await producer.send(topic, encoded(event), key=f"R-{i}".encode(), headers=[CONTENT_TYPE])
            await producer.flush()
            await runtime.start()
            await wait_for(lambda: _at_least(applied, 1), timeout=60, what="the sweep under way")
            await proxy.cut()
            down_at = asyncio.get_running_loop().time()
            await wait_for(lambda: not runner.healthy, what="the consumer reporting the outage")
            # /pipelinez reports the paused consumer; /readyz is the database's alone
            pipeline = await runtime.pipeline()
            assert pipeline["consumers"][runner.consumer.name]["applying"] is False and not pipeline["healthy"]
            await wait_for(lambda: asyncio.get_running_loop().time() - down_at >= OUTAGE_S and not runner.healthy,
                           timeout=OUTAGE_S + 10, interval=0.5, what="an outage held")  # fmt: skip
            await proxy.start()
            await wait_for(lambda: _at_least(applied, count), timeout=120, what="every event applied after it")
            await wait_for(lambda: runner.healthy, what="the consumer healthy again")
            await dead.poll()
        finally:
            await producer.stop()
            await runtime.stop()
            if proxy.server is not None:
                proxy.server.close()
    assert dead.records == []
    assert await _count_after(database_url, name) == count  # straight to PostgreSQL: every event applied once


async def _at_least(count, n: int) -> bool:
    return await count() >= n


async def _count_after(url: str, name: str) -> int:
    from common.db import Database

    db = Database(url)
    try:
        async with db.session() as session:
            return await session.scalar(
                select(func.count()).select_from(InboxMessage).where(InboxMessage.consumer == name)
            )
    finally:
        await db.dispose()


@pytest.mark.skipif(not os.environ.get("FIRSTLINE_TEST_PG_URL"), reason="needs PostgreSQL (FIRSTLINE_TEST_PG_URL)")
async def test_a_consumer_waiting_out_an_outage_stops_within_ten_seconds(database_url, kafka):
    """What SIGTERM asks of a service: its lifespan stops the runtime, outage or not."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the outage is PostgreSQL's")
    url = make_url(database_url)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    topic = f"stop.events.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    runtime = runtime_for(proxied, kafka)

    async def on_missed(_event, _envelope, _uow) -> None:
        return None

    runner = runtime.consume(Consumer(name=unique("stoptest"), topics=[topic], handlers={CheckInMissed: on_missed},
                                      dead_letter_topic=topics.dlq("command")))  # fmt: skip
    await runtime.start()
    stopped = False
    try:
        await wait_for(lambda: runtime.broker_connected, what="connected")
        await proxy.cut()
        producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
        await producer.start()
        try:
            event = CheckInMissed(
                resident_id="R-stop", date=date(2026, 12, 1), consecutive_days=1, grid_id="G", building_id="B"
            )
            await producer.send_and_wait(topic, encoded(event), key=b"R-stop", headers=[CONTENT_TYPE])
        finally:
            await producer.stop()
        await wait_for(lambda: not runner.healthy, timeout=30, what="the consumer held by the outage")
        async with asyncio.timeout(10):
            await runtime.stop()
        stopped = True
    finally:
        if not stopped:
            await runtime.stop()
