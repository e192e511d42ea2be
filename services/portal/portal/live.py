"""Live updates for the pages: check-ins read from Kafka, pushed to open pages by
server-sent events. A page learns at once that a building lead checked in for grandma.

Each replica reads `checkin.events.v1` from its end without a consumer group (every
replica needs every event; nothing is stored, so nothing needs replaying), and hands each
check-in to the open pages that show that resident. `CheckInSubmitted` says checked in;
`HealthAnomalyReported` (check-in's own judgement) says needs attention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from common import envelope as ce
from common.topics import CHECKIN_EVENTS

log = logging.getLogger(__name__)
STATUS_OF = {"CheckInSubmitted": "checked_in", "HealthAnomalyReported": "needs_attention"}


class LiveFeed:
    def __init__(self, kafka: dict[str, Any]) -> None:
        self.kafka = kafka  # the portal principal's client settings (common.kafka.client_kwargs)
        self._pages: dict[int, tuple[frozenset[str], asyncio.Queue]] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="portal-live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def watch(self, resident_ids: frozenset[str]) -> AsyncIterator[asyncio.Queue]:
        """A page's queue of (resident_id, status) for these residents, while it is open."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=100)
        self._pages[id(queue)] = (resident_ids, queue)
        try:
            yield queue
        finally:
            self._pages.pop(id(queue), None)

    def publish(self, event_type: str, resident_id: str) -> None:
        status = STATUS_OF.get(event_type)
        if status is None:
            return
        for residents, queue in list(self._pages.values()):
            if resident_id in residents and not queue.full():
                queue.put_nowait((resident_id, status))

    async def _run(self) -> None:
        delay = 1.0
        while True:
            consumer = AIOKafkaConsumer(**self.kafka, group_id=None, enable_auto_commit=False)
            try:
                await consumer.start()
                partitions = consumer.partitions_for_topic(CHECKIN_EVENTS) or set()
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = consumer.partitions_for_topic(CHECKIN_EVENTS) or set()
                consumer.assign([TopicPartition(CHECKIN_EVENTS, p) for p in sorted(partitions)])
                await consumer.seek_to_end()
                delay = 1.0
                async for record in consumer:
                    try:
                        event = ce.parse(record.value)
                    except ce.InvalidMessage:
                        continue
                    if event.type in STATUS_OF and isinstance(event.data, dict) and event.data.get("resident_id"):
                        self.publish(event.type, event.data["resident_id"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka away: pages still work, without live updates
                log.warning("live updates paused: %s; retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
