"""Bench: 10,000 TicketResolved through the real broker become 10,000 feedback invitations
accepted by a local gateway (its own process, verifying every signature), against a raw
consumer reading the same 10,000 events in the same run.

Messaging runs in-process on PostgreSQL with its consumer, relay and sender. First the
residents (ResidentRegistered) and their tickets (TicketOpened, whose owner hears of them in
a digest) are applied and drained; then the TicketResolved are produced and the clock runs
until the gateway has accepted every invitation.

    flock /tmp/firstline-heavy.lock .venv/bin/python bench/messaging_fanout.py [--events 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))

from _pg import fresh_database

from common import envelope as ce
from common.events.checkin import ResidentRegistered
from common.events.command import TicketOpened, TicketResolved
from common.runtime import PRODUCER_CONFIG
from common.topics import CHECKIN_EVENTS, COMMAND_EVENTS, DISPATCH_EVENTS, TIMEBANK_EVENTS, ensure_topics
from messaging.main import create_app
from messaging.models import Message, TicketRef
from messaging.settings import MessagingSettings

SECRET = "bench-gateway-secret-" + "x" * 24
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait(condition, what: str, timeout: float = 600.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (result := await condition()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
    return result


async def produce(producer: AIOKafkaProducer, topic: str, events) -> None:
    now = datetime.now(UTC)
    for event in events:
        await producer.send(topic, ce.encode(ce.wrap(event, at=now)), key=event.subject().encode())
    await producer.flush()


async def end_offsets(topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        ]
        return await consumer.end_offsets(tps)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def raw_read(starts: dict[TopicPartition, int], run: str, count: int) -> float:
    """The baseline: read the topic from `starts`, parse and validate each of this run's TicketResolved."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, max_poll_records=500)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        seen = 0
        started = time.perf_counter()
        while seen < count:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = ce.decode(ce.parse(record.value))
                    if isinstance(event, TicketResolved) and event.ticket_id.startswith(run):
                        seen += 1
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()
    n, run = args.events, f"B{uuid.uuid4().hex[:6]}"
    await ensure_topics(BOOTSTRAP)
    port = free_port()
    gateway = subprocess.Popen([sys.executable, str(ROOT / "bench/_gateway.py"), str(port), SECRET], cwd=ROOT)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **PRODUCER_CONFIG)
    await producer.start()
    try:
        async with (
            fresh_database("bench_messaging") as (url, _),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as g,
        ):
            await wait(lambda: _answers(g), "the gateway to start")
            group = f"messaging-bench-{run}"
            await _start_at_end(group, [DISPATCH_EVENTS, COMMAND_EVENTS, TIMEBANK_EVENTS, CHECKIN_EVENTS])
            settings = MessagingSettings(
                database_url=url, kafka_bootstrap_servers=BOOTSTRAP, consumer_group=group, gateway_secret=SECRET,
                sms_url=f"http://127.0.0.1:{port}/sms", voice_url=f"http://127.0.0.1:{port}/voice",
                chat_url=f"http://127.0.0.1:{port}/chat", quiet_hours_start=clock_time(0), quiet_hours_end=clock_time(0),
                reminder_time=clock_time(0), cutoff_time=clock_time(0), send_interval_s=0.05, jobs_interval_s=30,
                log_level="WARNING",
            )  # fmt: skip
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                runtime = app.state.runtime
                await wait(lambda: _true(runtime.broker_connected), "messaging to connect to Kafka")
                residents = [f"{run}-R{i:06d}" for i in range(n)]
                now = datetime.now(UTC)
                await produce(producer, CHECKIN_EVENTS, (
                    ResidentRegistered(resident_id=r, community_id="C1", grid_id="G1", building_id="B01", phone=f"139{i:08d}")
                    for i, r in enumerate(residents)))  # fmt: skip
                await produce(producer, COMMAND_EVENTS, (
                    TicketOpened(ticket_id=f"{run}-T{i:06d}", kind="complaint", priority="normal", owner="cmd-duty",
                                 department="command", respond_by=now, resolve_by=now, resident_id=r)
                    for i, r in enumerate(residents)))  # fmt: skip
                await wait(
                    lambda: _count(runtime, TicketRef, TicketRef.ticket_id.startswith(run), n),
                    "the tickets to be known",
                )
                await wait(lambda: _drained(runtime), "the owner notices to be sent")
                starts = await end_offsets(COMMAND_EVENTS)
                accepted_before = (await g.get("/count")).json()["by_kind"].get("feedback_invitation", 0)

                started = time.perf_counter()
                await produce(producer, COMMAND_EVENTS, (
                    TicketResolved(ticket_id=f"{run}-T{i:06d}", stage="resolved", owner="cmd-duty", at=now) for i in range(n)))  # fmt: skip
                produced = time.perf_counter() - started
                invited = Message.kind == "feedback_invitation"
                await wait(lambda: _count(runtime, Message, invited, n), "every invitation in the record", interval=0.1)
                recorded = time.perf_counter() - started
                await wait(lambda: _accepted(g, accepted_before + n), "every invitation at the gateway", interval=0.1)
                fanout = time.perf_counter() - started
                invitations = await _count(runtime, Message, Message.kind == "feedback_invitation", 0)
            baseline = await raw_read(starts, run, n)
    finally:
        await producer.stop()
        gateway.terminate()
        gateway.wait(timeout=15)
    print(
        f"messaging fan-out, {n:,} TicketResolved -> feedback invitations (real Kafka, PostgreSQL, a local HTTP gateway):"
    )
    print(f"  produced in {produced:.2f} s; every invitation queued in the record after {recorded:.2f} s")
    print(f"  every invitation accepted by the gateway after {fanout:.2f} s "
          f"({n / fanout:,.0f} messages/s; {invitations:,} invitations in the record)")  # fmt: skip
    print(
        f"  baseline, a raw consumer reading and validating the same events: {baseline:.2f} s ({n / baseline:,.0f} events/s)"
    )
    print(f"  ratio: {fanout / baseline:.1f}x the raw read; goal <= 30 s: {'met' if fanout <= 30 else 'NOT met'}")


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/count")).status_code == 200
    except httpx.HTTPError:
        return False


async def _true(value: bool) -> bool:
    return value


async def _accepted(client: httpx.AsyncClient, target: int) -> bool:
    return (await client.get("/count")).json()["by_kind"].get("feedback_invitation", 0) >= target


async def _count(runtime, model, where, at_least: int):
    async with runtime.db.session() as session:
        found = await session.scalar(select(func.count()).select_from(model).where(where))
    return found if found >= at_least else 0


async def _drained(runtime) -> bool:
    async with runtime.db.session() as session:
        return not await session.scalar(select(func.count()).select_from(Message).where(Message.status == "queued"))


async def _start_at_end(group: str, topics: list[str]) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from support import start_groups_at_the_end

    await start_groups_at_the_end(BOOTSTRAP, {group: topics})


if __name__ == "__main__":
    asyncio.run(main())
