"""The command center through the running stack: check-in's events become owned, dated
tickets; partner departments get only what concerns them on their topics; a ticket is
followed to the resident's feedback, which closes or reopens it; an overdue ticket escalates;
a redelivered event opens no second ticket; garbage is dead-lettered and later events still work."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from common.clock import local_date
from support import TopicReader, kafka_client, wait_for

pytestmark = pytest.mark.e2e
HEALTH_WORDS = ("temperature", "symptom", "fever", "phone", "°C")


async def _tickets(command, headers, **params):
    response = await command.get("/tickets", params={**params, "limit": 1000}, headers=headers)
    return response.json() if response.status_code == 200 else []


async def test_fever_and_missed_check_in_become_tickets_partners_see_only_their_part(stack):
    building = f"F{uuid.uuid4().hex[:6]}"
    today = local_date(datetime.now(UTC), __import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    admin = stack.token("admin", "e2e-admin")
    duty = stack.token("command", "cmd-duty")
    async with (
        TopicReader(stack.kafka, "partner.health.v1") as health_topic,
        TopicReader(stack.kafka, "partner.property.v1") as property_topic,
        TopicReader(stack.kafka, "partner.police.v1") as police_topic,
        stack.client("checkin") as checkin,
        stack.client("command") as command,
    ):
        ids = []
        for room in ("101", "102"):
            body = {
                "name": f"住户{room}",
                "phone": "13800000000",
                "grid_id": "G1",
                "building_id": building,
                "unit": "1",
                "room": room,
                "lat": 31.2311,
                "lon": 121.4745,
                "registered_on": str(today - timedelta(days=1)),
            }
            response = await checkin.post("/residents", json=body, headers=admin)
            assert response.status_code == 201, response.text
            ids.append(response.json()["resident_id"])
        febrile, forgetful = ids
        response = await checkin.post(
            "/checkins",
            json={"resident_id": febrile, "temperature_c": 38.9, "symptoms": ["cough"]},
            headers=stack.token("resident", febrile),
        )
        assert response.status_code == 201
        assert (await checkin.post("/sweeps", json={"date": str(today)}, headers=admin)).json()["missed"] >= 1

        fever = await wait_for(lambda: _one(command, duty, "fever", febrile), timeout=60, what="a fever ticket")
        assert fever["department"] == "health" and fever["priority"] == "urgent"
        respond = datetime.fromisoformat(fever["respond_by"]) - datetime.fromisoformat(fever["opened_at"])
        assert timedelta(minutes=29) <= respond <= timedelta(minutes=31)
        followup = await wait_for(
            lambda: _one(command, duty, "followup", forgetful), timeout=60, what="a follow-up ticket"
        )
        assert followup["owner"] == "gw-G1" and followup["resolve_by"]

        # The health department sees its ticket over HTTP and on its topic, with what it needs to act.
        partner = stack.token("partner", "health-duty", department="health")
        assert fever["ticket_id"] in {t["ticket_id"] for t in await _tickets(command, partner)}
        assert followup["ticket_id"] not in {t["ticket_id"] for t in await _tickets(command, partner)}
        [shared] = await wait_for(
            lambda: _for_ticket(health_topic, fever["ticket_id"]), timeout=30, what="partner.health.v1"
        )
        assert shared["data"]["temperature_c"] == 38.9 and shared["data"]["room"] == "101" and shared["data"]["phone"]
        # Property management and the police never see health data.
        await property_topic.poll()
        await police_topic.poll()
        for record in property_topic.records + police_topic.records:
            text = record.value.decode()
            if fever["ticket_id"] in text:
                assert not any(word in text for word in HEALTH_WORDS), text

        # The grid worker follows up; the resident's word closes it.
        worker = stack.token("grid_worker", "gw-G1", grid_ids=["G1"])
        path = f"/tickets/{followup['ticket_id']}"
        early = await command.post(f"{path}/resolve", json={"resolution": "x"}, headers=worker)
        assert early.status_code == 409 and "acknowledge" in early.text
        assert (await command.post(f"{path}/acknowledge", headers=worker)).status_code == 200
        assert (
            await command.post(f"{path}/resolve", json={"resolution": "called: phone was off"}, headers=worker)
        ).status_code == 200
        closed = await command.post(
            f"{path}/feedback", json={"satisfaction": 5}, headers=stack.token("resident", forgetful)
        )
        assert closed.status_code == 200 and closed.json()["stage"] == "closed"


async def _one(command, headers, kind: str, subject: str):
    found = [t for t in await _tickets(command, headers, kind=kind) if t["subject_id"] == subject]
    return found[0] if found else None


async def _for_ticket(reader: TopicReader, ticket_id: str):
    await reader.poll()
    return [e for e in reader.events() if e["subject"] == ticket_id] or None


async def test_garbage_is_dead_lettered_and_later_events_still_become_tickets(stack):
    async with (
        TopicReader(stack.kafka, "command.dlq.v1") as dead,
        stack.client("checkin") as checkin,
        stack.client("command") as command,
    ):
        producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=stack.kafka))
        await producer.start()
        try:
            await producer.send_and_wait("checkin.events.v1", b"\x00 not json", key=b"garbage")
        finally:
            await producer.stop()
        await wait_for(lambda: _dead_from(dead, "checkin.events.v1"), timeout=60, what="the garbage in command.dlq.v1")
        admin = stack.token("admin", "e2e-admin")
        body = {
            "name": "后来者",
            "phone": "13800000000",
            "grid_id": "G1",
            "building_id": f"G{uuid.uuid4().hex[:6]}",
            "unit": "1",
            "room": "1",
        }
        rid = (await checkin.post("/residents", json=body, headers=admin)).json()["resident_id"]
        await checkin.post("/checkins", json={"resident_id": rid, "temperature_c": 39.1}, headers=admin)
        await wait_for(
            lambda: _one(command, stack.token("command", "cmd-duty"), "fever", rid),
            timeout=60,
            what="a ticket after the garbage",
        )
    [record] = [r for r in dead.records if r.key == b"garbage"]
    headers = dict(record.headers)
    assert headers["dlq-origin-topic"] == b"checkin.events.v1" and headers["dlq-kind"] == b"unparsable"


async def _dead_from(reader: TopicReader, topic: str) -> bool:
    await reader.poll()
    return any(
        dict(r.headers).get("dlq-origin-topic") == topic.encode() and r.key == b"garbage" for r in reader.records
    )


def _events_of(reader: TopicReader, type_: str, ticket_id: str) -> list[dict]:
    return [e for e in reader.events(type_) if e["data"]["ticket_id"] == ticket_id]


async def _published(reader: TopicReader, type_: str, ticket_id: str) -> list[dict] | None:
    await reader.poll()
    return _events_of(reader, type_, ticket_id) or None


async def test_an_overdue_ticket_escalates_to_the_owners_supervisor(stack):
    """SLAs count whole minutes (PUT /sla refuses 0) and deadlines run from the service's
    own clock: the shortest way to an overdue ticket is a one-minute SLA and a minute."""
    kind = f"e2e_overdue_{uuid.uuid4().hex[:8]}"
    admin = stack.token("admin", "e2e-admin")
    duty = stack.token("command", "cmd-duty")
    async with TopicReader(stack.kafka, "command.events.v1") as events, stack.client("command") as command:
        # A category and kind of its own: the one-minute SLA touches no other test's tickets.
        rule = {
            "kind": kind,
            "department": "command",
            "owner_by": "department",
            "priority": "normal",
            "title": "E2E: {kind}",  # a title names no free text (it travels on command.events.v1)
        }
        assert (await command.put(f"/rules/category:{kind}", json=rule, headers=admin)).status_code == 200
        sla = {"respond_minutes": 1, "resolve_minutes": 1}
        assert (await command.put(f"/sla/{kind}/normal", json=sla, headers=admin)).status_code == 200
        response = await command.post(
            "/tickets", json={"category": kind, "description": "nobody answers"}, headers=duty
        )
        assert response.status_code == 201, response.text
        ticket = response.json()
        assert ticket["owner"] == "cmd-duty" and ticket["escalation_level"] == 0 and ticket["overdue"] is None
        assert datetime.fromisoformat(ticket["respond_by"]) - datetime.fromisoformat(ticket["opened_at"]) == timedelta(
            minutes=1
        )
        path = f"/tickets/{ticket['ticket_id']}"

        async def overdue():
            return (await command.get(path, headers=duty)).json()["overdue"]

        assert await wait_for(overdue, timeout=90, interval=0.5, what="the ticket to pass its deadline") == "respond"
        # The stack's own job (every COMMAND_JOBS_INTERVAL_S) may get there first: either way, once.
        run = await command.post("/escalations/run", headers=duty)
        assert run.status_code == 200 and run.json()["escalated"] >= 0
        escalated = (await command.get(path, headers=duty)).json()
        assert (
            escalated["escalation_level"] == 1 and escalated["owner"] == "cmd-lead" and escalated["priority"] == "high"
        )
        assert [h["action"] for h in escalated["history"]].count("escalate") == 1
        [event] = await wait_for(
            lambda: _published(events, "TicketEscalated", ticket["ticket_id"]), timeout=30, what="TicketEscalated"
        )
    assert (
        event["data"]["level"] == 1
        and event["data"]["owner"] == "cmd-lead"
        and event["data"]["previous_owner"] == "cmd-duty"
    )


async def test_poor_feedback_reopens_a_resolved_ticket(stack):
    resident = f"R-{uuid.uuid4().hex[:8]}"
    duty = stack.token("command", "cmd-duty")
    async with TopicReader(stack.kafka, "command.events.v1") as events, stack.client("command") as command:
        body = {"category": "complaint", "description": "no vegetables for two days"}
        response = await command.post("/tickets", json=body, headers=stack.token("resident", resident))
        assert response.status_code == 201, response.text
        ticket_id = response.json()["ticket_id"]
        path = f"/tickets/{ticket_id}"
        assert (await command.post(f"{path}/acknowledge", headers=duty)).status_code == 200
        assert (
            await command.post(f"{path}/resolve", json={"resolution": "delivered"}, headers=duty)
        ).status_code == 200
        feedback = {"satisfaction": 2, "comment": "they were rotten"}
        reopened = await command.post(f"{path}/feedback", json=feedback, headers=stack.token("resident", resident))
        assert reopened.status_code == 200, reopened.text
        assert reopened.json()["stage"] == "reopened" and reopened.json()["reopen_count"] == 1
        assert "acknowledge" in reopened.json()["allowed"] and reopened.json()["closed_at"] is None
        [event] = await wait_for(
            lambda: _published(events, "TicketReopened", ticket_id), timeout=30, what="TicketReopened"
        )
    assert event["data"]["stage"] == "reopened" and event["data"]["satisfaction"] == 2
    assert not _events_of(events, "TicketClosed", ticket_id)


async def test_a_redelivered_event_opens_no_second_ticket(stack):
    admin = stack.token("admin", "e2e-admin")
    duty = stack.token("command", "cmd-duty")
    async with (
        TopicReader(stack.kafka, "checkin.events.v1") as checkin_events,
        TopicReader(stack.kafka, "command.events.v1") as events,
        stack.client("checkin") as checkin,
        stack.client("command") as command,
    ):
        body = {
            "name": "重投",
            "phone": "13800000000",
            "grid_id": "G1",
            "building_id": f"D{uuid.uuid4().hex[:6]}",
            "unit": "1",
            "room": "1",
        }
        rid = (await checkin.post("/residents", json=body, headers=admin)).json()["resident_id"]
        assert (
            await checkin.post("/checkins", json={"resident_id": rid, "temperature_c": 39.2}, headers=admin)
        ).status_code == 201
        fever = await wait_for(lambda: _one(command, duty, "fever", rid), timeout=60, what="a fever ticket")
        [record] = await wait_for(
            lambda: _anomaly_of(checkin_events, rid), timeout=30, what="HealthAnomalyReported on checkin.events.v1"
        )

        # The very same bytes again, on the same partition: what a consumer sees after a
        # rebalance or a producer's retry.
        producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=stack.kafka))
        await producer.start()
        try:
            again = await producer.send_and_wait(
                record.topic, record.value, key=record.key, partition=record.partition, headers=list(record.headers)
            )
        finally:
            await producer.stop()
        # The command center commits a record's offset only once its effects are committed.
        partition = TopicPartition(record.topic, record.partition)
        admin_client = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=stack.kafka))
        await admin_client.start()
        try:

            async def consumed() -> bool:
                offsets = await admin_client.list_consumer_group_offsets(
                    stack.groups["command"], partitions=[partition]
                )
                return partition in offsets and offsets[partition].offset > again.offset

            await wait_for(
                consumed, timeout=30, interval=0.2, what="the command center to consume the redelivered event"
            )
        finally:
            await admin_client.close()

        [ticket] = [t for t in await _tickets(command, duty, kind="fever") if t["subject_id"] == rid]
        assert ticket["ticket_id"] == fever["ticket_id"] and ticket["event_count"] == 1
        assert ticket["source_event_ids"] == fever["source_event_ids"] == [json.loads(record.value)["id"]]
        # Staged after the redelivery was handled: the relay sends whatever that caused with it or before it.
        assert (await command.post(f"/tickets/{ticket['ticket_id']}/acknowledge", headers=duty)).status_code == 200
        await wait_for(
            lambda: _published(events, "TicketAcknowledged", ticket["ticket_id"]), timeout=30, what="TicketAcknowledged"
        )
    opened = [e for e in events.events("TicketOpened") if e["data"]["subject_id"] == rid]
    assert [e["data"]["ticket_id"] for e in opened] == [ticket["ticket_id"]]
    assert not _events_of(events, "TicketUpdated", ticket["ticket_id"])


async def _anomaly_of(reader: TopicReader, resident_id: str):
    await reader.poll()
    found = [
        r for r in reader.records if r.value.startswith(b"{") and json.loads(r.value)["type"] == "HealthAnomalyReported"
    ]
    return [r for r in found if json.loads(r.value)["subject"] == resident_id] or None
