"""A partner desk's inbox over HTTP (GET /partner/tickets): the tickets its Kafka topic tells
of, each exactly as the topic's latest message says, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from common.events.checkin import CheckInMissed, HealthAnomalyReported

DAY = date(2026, 11, 21)
HEALTH_FIELDS = {"temperature_c", "symptoms", "phone", "name", "resident_id", "room", "unit", "date"}


def fever() -> HealthAnomalyReported:
    return HealthAnomalyReported(
        resident_id="R1", date=DAY, temperature_c=39.87, symptoms=["loss_of_smell_or_taste"], grid_id="G1",
        building_id="B01", fever=True, name="王芳", phone="13800000000", unit="2", room="401", tags=["pregnant"],
    )  # fmt: skip


async def inbox(command, headers, **params) -> list[dict]:
    response = await command.client.get("/partner/tickets", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def latest_on_topic(command, department: str) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for message in await command.outbox(topic=f"partner.{department}.v1"):
        latest[message["subject"]] = message
    return latest


async def test_each_desk_reads_what_its_topic_carries_and_nothing_more(command):
    await command.deliver(fever(), CheckInMissed(resident_id="R2", date=DAY, consecutive_days=1, grid_id="G1",
                                                 building_id="B01", tags=["elderly"]))  # fmt: skip
    command.clock.advance(minutes=5)
    order = await command.client.post(
        "/tickets",
        json={"category": "public_order", "description": "Crowd at the gate", "building_id": "B02"},
        headers=command.as_("grid_worker", "gw-G1", grid_ids=["G1"]),
    )
    assert order.status_code == 201, order.text
    health = command.as_("partner", "h-1", department="health")
    prop = command.as_("partner", "pr-1", department="property")
    police = command.as_("partner", "po-1", department="police")

    for department, headers in (("health", health), ("property", prop), ("police", police)):
        topic = await latest_on_topic(command, department)
        seen = await inbox(command, headers)
        # the same tickets, each with exactly the data of the topic's latest message
        assert {e["data"]["ticket_id"]: e["data"] for e in seen} == {k: m["data"] for k, m in topic.items()}
        assert {e["type"] for e in seen} == {m["type"] for m in topic.values()}

    (shared,) = await inbox(command, prop)
    assert shared["type"] == "PropertyTicketShared" and shared["data"]["kind"] == "building_action"
    assert not HEALTH_FIELDS & set(shared["data"]) and shared["allowed"] == []  # told of it; health owns it
    for sentinel in ("39.87", "loss_of_smell", "pregnant", "王芳", "13800000000", "401"):
        assert sentinel not in str(await inbox(command, prop)) + str(await inbox(command, police))
    (doctor,) = await inbox(command, health)
    assert (doctor["data"]["temperature_c"], doctor["allowed"]) == (39.87, ["acknowledge"])
    (gate,) = await inbox(command, police)
    assert (gate["type"], gate["data"]["summary"], gate["allowed"]) == ("PoliceTicketShared", None, ["acknowledge"])  # fmt: skip
    assert gate["data"]["ticket_id"].startswith("ref-")  # police's own reference, not the ticket id


async def test_a_desk_acknowledges_and_resolves_and_its_inbox_follows_the_topic(command):
    order = await command.client.post(
        "/tickets",
        json={"category": "public_order", "description": "Crowd at the gate", "building_id": "B02"},
        headers=command.staff,
    )
    police = command.as_("partner", "po-1", department="police")
    (told,) = await inbox(command, police)
    reference = told["data"]["ticket_id"]  # what the desk knows of the ticket: its topic's reference
    assert reference.startswith("ref-") and reference != order.json()["ticket_id"]
    prop = command.as_("partner", "pr-1", department="property")
    assert (await command.client.post(f"/tickets/{reference}/acknowledge", headers=prop)).status_code == 404
    command.clock.advance(minutes=3)
    assert (await command.client.post(f"/tickets/{reference}/acknowledge", headers=police)).status_code == 200
    (entry,) = await inbox(command, police)
    assert (entry["data"]["stage"], entry["allowed"]) == ("responding", ["resolve"])
    assert entry["data"] == (await latest_on_topic(command, "police"))[reference]["data"]  # `at` included

    command.clock.advance(minutes=20)
    done = await command.client.post(f"/tickets/{reference}/resolve", json={"resolution": "dispersed"}, headers=police)
    assert done.status_code == 200
    assert await inbox(command, police) == []
    (finished,) = await inbox(command, police, finished="true")
    assert finished["data"] == (await latest_on_topic(command, "police"))[reference]["data"]
    assert finished["data"]["stage"] == "resolved" and finished["allowed"] == []


async def test_who_may_read_which_inbox(command):
    police = command.as_("partner", "po-1", department="police")
    assert (await command.client.get("/partner/tickets", params={"department": "health"}, headers=police)).status_code == 403  # fmt: skip
    assert (await command.client.get("/partner/tickets", headers=command.as_("resident", "R1"))).status_code == 403
    assert (await command.client.get("/partner/tickets", headers=command.staff)).status_code == 422
    assert await inbox(command, command.staff, department="health") == []


async def test_key_population_follow_ups_have_their_own_rate(command):
    await command.deliver(
        CheckInMissed(
            resident_id="R1", date=DAY, consecutive_days=1, grid_id="G1", building_id="B01", tags=["elderly"]
        ),
        CheckInMissed(
            resident_id="R2", date=DAY, consecutive_days=1, grid_id="G1", building_id="B01", tags=["chronic"]
        ),
        CheckInMissed(resident_id="R3", date=DAY, consecutive_days=1, grid_id="G1", building_id="B01"),
    )
    worker = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])
    for t in await command.tickets():
        if t["subject_id"] in ("R1", "R3"):
            await command.client.post(f"/tickets/{t['ticket_id']}/acknowledge", headers=worker)
            await command.client.post(f"/tickets/{t['ticket_id']}/resolve", json={"resolution": "ok"}, headers=worker)
    figures = (await command.client.get("/kpis", params={"date": str(DAY)}, headers=command.staff)).json()
    assert figures["followups"]["key_population"] == {"opened": 2, "resolved": 1, "resolution_rate": 0.5}
    assert (figures["followups"]["opened"], figures["followups"]["resolved"]) == (3, 2)
