"""What tests of every service share: waiting on conditions, reading topics, tokens, the app harness."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select

from common.auth import operator_token
from common.kafka import client_kwargs
from common.outbox import OutboxMessage
from common.settings import StackSettings

OPERATOR = "operator"


def kafka_client(principal: str = OPERATOR, **extra: Any) -> dict[str, Any]:
    """aiokafka keyword arguments for `principal` on the test broker (KAFKA_* environment;
    credentials from var/kafka/credentials, as `firstline kafka-credentials` prints them).
    Tests act as `operator` unless they test what a principal may do."""
    return client_kwargs(StackSettings(), principal, **extra)


async def wait_for(
    condition: Callable[[], Awaitable[Any] | Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll until `condition()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """`wait_for` for synchronous callers (a browser driven by selenium): poll `condition()`
    until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class TopicReader:
    """Reads a topic from the offsets it had when the reader was made (or from `start`, the
    `starts` of an earlier reader): what a test caused, never the topic's whole history."""

    def __init__(self, bootstrap: str, topic: str, start: dict[TopicPartition, int] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.start = start
        self.records: list[Any] = []

    async def __aenter__(self) -> TopicReader:
        self.consumer = AIOKafkaConsumer(
            **kafka_client(bootstrap_servers=self.bootstrap),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        if not partitions:
            await self.consumer._client.force_metadata_update()
            partitions = self.consumer.partitions_for_topic(self.topic) or set()
        self.tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.tps)
        self.starts = self.start or await self.consumer.end_offsets(self.tps)
        for tp in self.tps:
            self.consumer.seek(tp, self.starts[tp])
        return self

    async def __aexit__(self, *exc) -> None:
        await self.consumer.stop()

    async def poll(self) -> list[Any]:
        batches = await self.consumer.getmany(timeout_ms=200)
        for batch in batches.values():
            self.records.extend(batch)
        return self.records

    def events(self, type_: str | None = None) -> list[dict]:
        out = [json.loads(r.value) for r in self.records if r.value and r.value.startswith(b"{")]
        return [e for e in out if type_ is None or e.get("type") == type_]

    async def wait_for_events(self, type_: str, count: int, timeout: float = 30.0) -> list[dict]:
        async def enough() -> bool:
            await self.poll()
            return len(self.events(type_)) >= count

        await wait_for(enough, timeout=timeout, what=f"{count} {type_} on {self.topic}")
        return self.events(type_)


def bearer(role: str, sub: str, **scopes: Any) -> dict[str, str]:
    """Headers with a token signed by the test run's key (tests/conftest.py), valid at every service."""
    return {"Authorization": "Bearer " + operator_token(os.environ["FIRSTLINE_KEYS_DIR"], role=role, sub=sub, **scopes)}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def start_groups_at_the_end(kafka: str, groups: dict[str, list[str]]) -> None:
    """Commit each new consumer group's offsets (group -> topics) at the topics' current ends,
    so a service under test neither replays the broker's history nor misses what the test
    publishes after it starts."""
    from aiokafka.structs import OffsetAndMetadata

    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(**kafka_client(bootstrap_servers=kafka), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in ends.items()})
        finally:
            await consumer.stop()


class AppHarness:
    """A service's app in-process: its manual clock, tokens, and its outbox to inspect.
    Service conftests extend it with their own helpers."""

    def __init__(self, app, clock, client: httpx.AsyncClient) -> None:
        self.app = app
        self.clock = clock
        self.client = client
        self.service = app.state.service
        self.runtime = app.state.runtime

    def as_(self, role: str, sub: str = "someone", **scopes: Any) -> dict[str, str]:
        # Signed at the real time: services check tokens against the wall clock, whatever
        # day the test's clock plays (a token signed in the clock's past expires).
        return bearer(role, sub, **scopes)

    async def outbox(self, event_type: str | None = None) -> list[dict]:
        """The events the app has committed, in order: what the relay would publish."""
        async with self.runtime.db.session() as session:
            rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.seq))).scalars().all()
        events = [json.loads(r.value) for r in rows]
        return [e for e in events if event_type is None or e["type"] == event_type]


@asynccontextmanager
async def serving(app, harness: Callable[[httpx.AsyncClient], AppHarness]) -> AsyncIterator[AppHarness]:
    """Run the app's lifespan and talk to it over ASGI: `harness(client)` makes the harness."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
            yield harness(client)
