"""`firstline dlq list|replay`: an operator reads a service's dead letters and publishes
chosen ones again on their origin topic, with their original headers (real broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from common import dlq, envelope, topics
from common.bus import Consumer
from common.events.checkin import CheckInMissed
from common.runtime import Runtime
from common.settings import ServiceSettings, StackSettings
from support import TopicReader, kafka_client, unique, wait_for


async def test_dead_letters_are_listed_and_replayed_onto_their_origin_topic(database_url, kafka):
    origin = f"dlqtest.events.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(origin, 1, 1)])
    finally:
        await admin.close()
    event = envelope.wrap(CheckInMissed(resident_id="R-dlq", date=date(2026, 12, 1), consecutive_days=1, grid_id="G",
                                        building_id="B"), at=datetime.now(UTC))  # fmt: skip
    value = envelope.encode(event)
    settings = ServiceSettings(service="dlqtest", database_url=database_url, kafka_bootstrap_servers=kafka,
                               kafka_principal="operator", jobs_interval_s=0, start_consumers=False)  # fmt: skip
    runtime = Runtime(settings)
    runner = runtime.consume(
        Consumer(name=unique("dlqtest"), topics=[origin], handlers={}, dead_letter_topic=topics.dlq("command"))
    )
    await runtime.start()
    try:
        await wait_for(lambda: runtime.broker_connected, what="connected")
        record = ConsumerRecord(
            origin,
            0,
            7,
            0,
            0,
            b"R-dlq",
            value,
            None,
            5,
            len(value),
            [("content-type", b"application/cloudevents+json")],
        )
        await runner.dead_letter(record, "rejected for the test", "rejected")
    finally:
        await runtime.stop()

    stack = StackSettings(kafka_bootstrap_servers=kafka)
    everything = await dlq.read(stack, "command")
    letters = [d for d in everything if d.event_id == event.id]
    assert [d.summary()["origin"] for d in letters] == [f"{origin}[0]@7"]
    assert letters[0].summary()["kind"] == "rejected" and not letters[0].stub

    listed = subprocess.run([sys.executable, "-m", "common.cli", "dlq", "list", "command"], capture_output=True, text=True,
                            check=True, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka}).stdout  # fmt: skip
    assert any(json.loads(line)["event_id"] == event.id for line in listed.splitlines())

    async with TopicReader(kafka, origin) as replayed:
        assert await dlq.replay(stack, "command", {event.id}) == 1
        await wait_for(lambda: _poll_one(replayed), what="the replayed event on its origin topic")
    (back,) = replayed.records
    assert back.value == value and back.key == b"R-dlq"
    headers = dict(back.headers)
    assert headers["content-type"] == b"application/cloudevents+json" and not any(k.startswith("dlq-") for k in headers)


async def _poll_one(reader: TopicReader) -> bool:
    await reader.poll()
    return len(reader.records) >= 1
