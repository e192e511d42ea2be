"""An operator's view of a service's dead letters: read them, and replay them onto the topic
they came from. Consumers are idempotent (the inbox), so replaying an event that was applied
meanwhile changes nothing. Runs as the `operator` principal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from common import bus, topics
from common.kafka import client_kwargs
from common.principals import OPERATOR
from common.settings import StackSettings


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def event_id(self) -> str | None:
        try:
            return json.loads(self.value or b"").get("id")
        except (ValueError, AttributeError):
            return None

    @property
    def stub(self) -> bool:
        """A dead letter too large to keep whole: only its origin and digest are here."""
        return bus.H_STUB in self.headers

    def summary(self) -> dict[str, Any]:
        h = self.headers
        return {
            "partition": self.partition, "offset": self.offset, "event_id": self.event_id,
            "kind": h.get(bus.H_KIND), "reason": h.get(bus.H_REASON), "consumer": h.get(bus.H_CONSUMER),
            "origin": f"{h.get(bus.H_TOPIC)}[{h.get(bus.H_PARTITION)}]@{h.get(bus.H_OFFSET)}",
            "stub": self.stub, "digest": h.get(bus.H_DIGEST),
        }  # fmt: skip


async def read(settings: StackSettings, service: str) -> list[DeadLetter]:
    """Every dead letter of `service` now in its DLQ topic, oldest first per partition."""
    topic = topics.dlq(service)
    consumer = AIOKafkaConsumer(**client_kwargs(settings, OPERATOR), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        start = await consumer.beginning_offsets(partitions)
        seen = {tp: start[tp] for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, start[tp])
        letters: list[DeadLetter] = []
        while any(seen[tp] < end[tp] for tp in partitions):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for r in records:
                    if r.offset < end[tp]:
                        headers = {k: v.decode(errors="replace") for k, v in r.headers}
                        letters.append(DeadLetter(r.partition, r.offset, r.key, r.value, headers))
                    seen[tp] = r.offset + 1
            for tp in partitions:  # past compacted gaps and control records, too
                seen[tp] = max(seen[tp], await consumer.position(tp))
        return letters
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
    if not found:
        raise SystemExit(f"no topic {topic} (or the operator may not see it)")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def replay(settings: StackSettings, service: str, event_ids: set[str] | None = None) -> int:
    """Publish dead letters again on their origin topics, with their original headers;
    stubs hold no event and are skipped. Returns how many were published."""
    letters = [
        d for d in await read(settings, service) if not d.stub and (event_ids is None or d.event_id in event_ids)
    ]
    producer = AIOKafkaProducer(**client_kwargs(settings, OPERATOR), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for letter in letters:
            origin = letter.headers[bus.H_TOPIC]
            headers = [(k, v.encode()) for k, v in letter.headers.items() if not k.startswith("dlq-")]
            await producer.send_and_wait(origin, letter.value, key=letter.key, headers=headers)
    finally:
        await producer.stop()
    return len(letters)
