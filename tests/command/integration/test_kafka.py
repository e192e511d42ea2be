"""The command center against the real broker: events from Kafka become tickets, garbage
goes to command.dlq.v1 and later events are still handled, redelivery opens nothing new,
and partner topics carry only what each department may see. On SQLite and on PostgreSQL
(`database_url`), a fresh database and a fresh consumer group each time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from command import domain
from command.handlers import TOPICS
from command.main import create_app
from command.settings import CommandSettings
from common import envelope as ce
from common.bus import H_KIND, H_OFFSET, H_PARTITION, H_TOPIC
from common.events.checkin import CheckInMissed, HealthAnomalyReported
from support import TopicReader, bearer, kafka_client, unique, wait_for

pytestmark = pytest.mark.kafka
HEALTH_FIELDS = {"temperature_c", "symptoms", "phone", "name", "resident_id", "room", "unit"}


async def start_group_at_end(bootstrap: str, group: str) -> None:
    """A new consumer group that starts at the end of the topics: this test's events only."""
    consumer = AIOKafkaConsumer(**kafka_client(bootstrap_servers=bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.commit({tp: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()


async def test_real_events_become_tickets_garbage_is_dead_lettered_redelivery_ignored(kafka, database_url):
    group = unique("command-test")
    await start_group_at_end(kafka, group)
    resident, other = unique("R"), unique("R")
    today = datetime.now(UTC).date()
    fever = ce.wrap(
        HealthAnomalyReported(
            resident_id=resident, date=today, temperature_c=39.1, symptoms=["cough"], grid_id="G1", building_id="B01",
            fever=True, name="李雷", phone="13700000000", unit="1", room="101", lat=31.23, lon=121.47,
        ),
        at=datetime.now(UTC),
    )  # fmt: skip
    missed = ce.wrap(
        CheckInMissed(resident_id=other, date=today, consecutive_days=1, grid_id="G2", building_id="B02"),
        at=datetime.now(UTC),
    )
    unknown = missed.model_copy(
        update={"id": str(uuid.uuid4()), "type": "SomethingNew", "dataschema": "urn:firstline:checkin:SomethingNew:1"}
    )
    malformed = missed.model_copy(update={"id": str(uuid.uuid4()), "data": {"resident_id": other}})  # no date, grid...

    settings = CommandSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        consumer_group=group,
        jobs_interval_s=0,
        outbox_poll_interval_s=0.05,
    )
    app = create_app(settings)
    readers = {
        t: TopicReader(kafka, t)
        for t in (
            "command.dlq.v1",
            "command.events.v1",
            "partner.health.v1",
            "partner.property.v1",
            "partner.police.v1",
        )
    }
    async with app.router.lifespan_context(app):
        for reader in readers.values():
            await reader.__aenter__()
        try:
            producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
            await producer.start()
            try:
                key = resident.encode()
                for value in (
                    b"\x00not json at all",
                    ce.encode(unknown),
                    ce.encode(malformed),
                    ce.encode(fever),
                    ce.encode(fever),
                ):
                    await producer.send_and_wait(
                        "checkin.events.v1", value, key=key, headers=[("content-type", b"application/cloudevents+json")]
                    )
                await producer.send_and_wait("checkin.events.v1", ce.encode(missed), key=other.encode())
            finally:
                await producer.stop()

            headers = bearer("command", "cmd-duty")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://command") as client:

                async def both_tickets():
                    response = await client.get("/tickets", headers=headers)
                    found = [t for t in response.json() if t["subject_id"] in (resident, other)]
                    return found if len(found) == 2 else None

                tickets = {t["kind"]: t for t in await wait_for(both_tickets, timeout=60, what="tickets from Kafka")}
            assert tickets["fever"]["owner"] == "health-duty" and tickets["followup"]["owner"] == "gw-G2"
            assert tickets["fever"]["event_count"] == 1  # the redelivered fever joined nothing and opened nothing

            dead = readers["command.dlq.v1"]

            async def two_dead():
                await dead.poll()
                return len([r for r in dead.records if r.key == key]) >= 2

            await wait_for(two_dead, timeout=30, what="garbage on command.dlq.v1")
            # Dead letters are at least once too (a rebalance may replay a batch): one kind per origin offset.
            by_offset = {}
            for record in (r for r in dead.records if r.key == key):
                headers = {k: v.decode() for k, v in record.headers}
                by_offset[(headers[H_PARTITION], headers[H_OFFSET])] = headers[H_KIND]
            assert sorted(by_offset.values()) == ["invalid-payload", "unparsable"]  # the unknown type was ignored
            assert all(dict(r.headers)[H_TOPIC] == b"checkin.events.v1" for r in dead.records if r.key == key)

            async def both_opened():
                await readers["command.events.v1"].poll()
                opened = {e["data"]["ticket_id"] for e in readers["command.events.v1"].events("TicketOpened")}
                return {t["ticket_id"] for t in tickets.values()} <= opened

            await wait_for(both_opened, timeout=30, what="TicketOpened for both on command.events.v1")

            fever_ticket = tickets["fever"]["ticket_id"]

            async def shared_with(topic: str):
                # Property and police name the ticket by their own reference; health by its id.
                department = topic.split(".")[1]
                subject = fever_ticket if department == "health" else domain.reference(key, department, fever_ticket)
                await readers[topic].poll()
                return [e for e in readers[topic].events() if e["subject"] == subject]

            key = settings.reference_key

            health = await wait_for(lambda: shared_with("partner.health.v1"), what="the health message")
            assert health[0]["type"] == "HealthTicketShared"
            assert health[0]["data"]["phone"] == "13700000000" and health[0]["data"]["temperature_c"] == 39.1

            (prop,) = await wait_for(lambda: shared_with("partner.property.v1"), what="the property message")
            # Timestamps left out of the text search: "…:39.1…" is a time, not the temperature.
            untimed = {k: v for k, v in prop["data"].items() if k not in ("respond_by", "resolve_by", "at")}
            assert not HEALTH_FIELDS & set(prop["data"]) and "39.1" not in json.dumps(untimed)
            await readers["partner.police.v1"].poll()
            assert await shared_with("partner.police.v1") == []
        finally:
            for reader in readers.values():
                await reader.__aexit__(None, None, None)
