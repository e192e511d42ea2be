"""Live updates for the pages: check-ins and ticket changes read from Kafka, pushed to open
pages by server-sent events. A page learns at once that a building lead checked in for
grandma; the command center's board learns at once that a ticket was opened or moved.

Each replica reads `checkin.events.v1` and `command.events.v1` from their ends without a
consumer group (every replica needs every event; nothing is stored, so nothing needs
replaying). A check-in goes to the open pages that show that resident: `CheckInSubmitted`
says checked in; `HealthAnomalyReported` (check-in's own judgement) says needs attention.
A ticket event goes to the open boards as its ticket id and event type only (what the
event carries beyond that is not passed on): the board then reads the ticket through
command's API as the signed-in person, so command's own scoping decides what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from common import envelope as ce
from common.topics import CHECKIN_EVENTS, COMMAND_EVENTS

log = logging.getLogger(__name__)
STATUS_OF = {"CheckInSubmitted": "checked_in", "HealthAnomalyReported": "needs_attention"}
FOLLOWED = (CHECKIN_EVENTS, COMMAND_EVENTS)


class LiveFeed:
    def __init__(self, kafka: dict[str, Any]) -> None:
        self.kafka = kafka  # the portal principal's client settings (common.kafka.client_kwargs)
        self._pages: dict[int, tuple[frozenset[str], asyncio.Queue]] = {}
        self._boards: dict[int, asyncio.Queue] = {}
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

    @contextlib.asynccontextmanager
    async def watch_tickets(self) -> AsyncIterator[asyncio.Queue]:
        """A board's queue of (ticket_id, event_type) for every ticket event, while it is open."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=100)
        self._boards[id(queue)] = queue
        try:
            yield queue
        finally:
            self._boards.pop(id(queue), None)

    def publish_ticket(self, event_type: str, ticket_id: str) -> None:
        for queue in list(self._boards.values()):
            if not queue.full():  # a board that fell behind reloads on the next event anyway
                queue.put_nowait((ticket_id, event_type))

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
                if not any(consumer.partitions_for_topic(t) for t in FOLLOWED):
                    await consumer._client.force_metadata_update()
                assigned = [
                    TopicPartition(topic, p)
                    for topic in FOLLOWED
                    for p in sorted(consumer.partitions_for_topic(topic) or ())
                ]
                unseen = [t for t in FOLLOWED if not consumer.partitions_for_topic(t)]
                if unseen:  # e.g. a broker provisioned before the portal could read it: the rest still flows
                    log.warning("live updates without %s (no partitions seen: missing topic or read ACL)", unseen)
                if not assigned:
                    raise RuntimeError("no followed topic is readable")
                consumer.assign(assigned)
                await consumer.seek_to_end()
                delay = 1.0
                async for record in consumer:
                    try:
                        event = ce.parse(record.value)
                    except ce.InvalidMessage:
                        continue
                    if not isinstance(event.data, dict):
                        continue
                    if record.topic == COMMAND_EVENTS:
                        if event.type.startswith("Ticket") and isinstance(event.data.get("ticket_id"), str):
                            self.publish_ticket(event.type, event.data["ticket_id"])
                    elif event.type in STATUS_OF and event.data.get("resident_id"):
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
