"""The command center through the running stack: check-in's events become owned, dated
tickets; partner departments get only what concerns them on their topics; a ticket is
followed to the resident's feedback; garbage is dead-lettered and later events still work."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from common.clock import local_date
from support import TopicReader, wait_for

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
            body = {"name": f"住户{room}", "phone": "13800000000", "grid_id": "G1", "building_id": building, "unit": "1",
                    "room": room, "lat": 31.2311, "lon": 121.4745, "registered_on": str(today - timedelta(days=1))}
            response = await checkin.post("/residents", json=body, headers=admin)
            assert response.status_code == 201, response.text
            ids.append(response.json()["resident_id"])
        febrile, forgetful = ids
        response = await checkin.post("/checkins", json={"resident_id": febrile, "temperature_c": 38.9, "symptoms": ["cough"]},
                                      headers=stack.token("resident", febrile))
        assert response.status_code == 201
        assert (await checkin.post("/sweeps", json={"date": str(today)}, headers=admin)).json()["missed"] >= 1

        fever = await wait_for(lambda: _one(command, duty, "fever", febrile), timeout=60, what="a fever ticket")
        assert fever["department"] == "health" and fever["priority"] == "urgent"
        respond = datetime.fromisoformat(fever["respond_by"]) - datetime.fromisoformat(fever["opened_at"])
        assert timedelta(minutes=29) <= respond <= timedelta(minutes=31)
        followup = await wait_for(lambda: _one(command, duty, "followup", forgetful), timeout=60, what="a follow-up ticket")
        assert followup["owner"] == "gw-G1" and followup["resolve_by"]

        # The health department sees its ticket over HTTP and on its topic, with what it needs to act.
        partner = stack.token("partner", "health-duty", department="health")
        assert fever["ticket_id"] in {t["ticket_id"] for t in await _tickets(command, partner)}
        assert followup["ticket_id"] not in {t["ticket_id"] for t in await _tickets(command, partner)}
        [shared] = await wait_for(lambda: _for_ticket(health_topic, fever["ticket_id"]), timeout=30, what="partner.health.v1")
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
        assert (await command.post(f"{path}/resolve", json={"resolution": "called: phone was off"}, headers=worker)).status_code == 200
        closed = await command.post(f"{path}/feedback", json={"satisfaction": 5}, headers=stack.token("resident", forgetful))
        assert closed.status_code == 200 and closed.json()["stage"] == "closed"


async def _one(command, headers, kind: str, subject: str):
    found = [t for t in await _tickets(command, headers, kind=kind) if t["subject_id"] == subject]
    return found[0] if found else None


async def _for_ticket(reader: TopicReader, ticket_id: str):
    await reader.poll()
    return [e for e in reader.events() if e["subject"] == ticket_id] or None


async def test_garbage_is_dead_lettered_and_later_events_still_become_tickets(stack):
    async with TopicReader(stack.kafka, "command.dlq.v1") as dead, stack.client("checkin") as checkin, stack.client("command") as command:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
        await producer.start()
        try:
            await producer.send_and_wait("checkin.events.v1", b"\x00 not json", key=b"garbage")
        finally:
            await producer.stop()
        await wait_for(lambda: _dead_from(dead, "checkin.events.v1"), timeout=60, what="the garbage in command.dlq.v1")
        admin = stack.token("admin", "e2e-admin")
        body = {"name": "后来者", "phone": "13800000000", "grid_id": "G1", "building_id": f"G{uuid.uuid4().hex[:6]}",
                "unit": "1", "room": "1"}
        rid = (await checkin.post("/residents", json=body, headers=admin)).json()["resident_id"]
        await checkin.post("/checkins", json={"resident_id": rid, "temperature_c": 39.1}, headers=admin)
        await wait_for(lambda: _one(command, stack.token("command", "cmd-duty"), "fever", rid), timeout=60, what="a ticket after the garbage")
    [record] = [r for r in dead.records if r.key == b"garbage"]
    headers = dict(record.headers)
    assert headers["dlq-origin-topic"] == b"checkin.events.v1" and headers["dlq-kind"] == b"unparsable"


async def _dead_from(reader: TopicReader, topic: str) -> bool:
    await reader.poll()
    return any(dict(r.headers).get("dlq-origin-topic") == topic.encode() and r.key == b"garbage" for r in reader.records)
