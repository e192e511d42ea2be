"""The command app in-process on SQLite and PostgreSQL: events fed to its consumer, HTTP as
users and partners use it, the outbox inspected."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

from common.events.checkin import (
    CheckInMissed,
    CheckInSubmitted,
    HealthAnomalyReported,
    ResidentRegistered,
    SamplingLagging,
)
from common.events.dispatch import RequestRaised
from common.events.supplies import StockLow, StockOut

DAY = date(2026, 11, 21)
HEALTH_FIELDS = {"temperature_c", "symptoms", "phone", "name", "resident_id", "room", "unit"}


def missed(resident="R1", days=1, day=DAY, grid="G1", building="B01") -> CheckInMissed:
    return CheckInMissed(resident_id=resident, date=day, consecutive_days=days, grid_id=grid, building_id=building)


def fever(resident="R1") -> HealthAnomalyReported:
    return HealthAnomalyReported(
        resident_id=resident, date=DAY, temperature_c=38.6, symptoms=["cough"], grid_id="G1", building_id="B01",
        fever=True, name="王芳", phone="13800000000", unit="2", room="401", lat=31.2304, lon=121.4737,
    )  # fmt: skip


async def test_missed_checkins_become_followups_with_owner_and_deadlines_one_per_problem(command):
    first, _ = await command.deliver(missed("R1"), missed("R2", grid="G2"))
    tickets = {t["subject_id"]: t for t in await command.tickets()}
    assert set(tickets) == {"R1", "R2"}
    t1 = tickets["R1"]
    assert (t1["kind"], t1["owner"], t1["department"], t1["stage"], t1["priority"]) == (
        "followup",
        "gw-G1",
        "grid",
        "discovered",
        "normal",
    )
    assert tickets["R2"]["owner"] == "gw-G2"
    assert t1["respond_by"] < t1["resolve_by"] and t1["resolve_by"].startswith("2026-11-21T")  # due the same day
    opened = await command.outbox("TicketOpened")
    assert {e["data"]["owner"] for e in opened} == {"gw-G1", "gw-G2"}
    assert first.id in [i for e in opened for i in e["data"]["source_event_ids"]]

    # Redelivery of the same event changes nothing; a second missed day joins the open ticket.
    await command.deliver(first)
    command.clock.advance(days=1)
    await command.deliver(missed("R1", days=2, day=DAY + timedelta(days=1)))
    tickets = await command.tickets(kind="followup")
    assert len(tickets) == 2
    t1 = next(t for t in tickets if t["subject_id"] == "R1")
    assert (t1["event_count"], t1["priority"], t1["facts"]["consecutive_days"]) == (2, "high", 2)
    assert len(await command.outbox("TicketOpened")) == 2
    updated = await command.outbox("TicketUpdated")
    assert [e["data"]["priority"] for e in updated] == ["high"]


async def test_lifecycle_who_and_when_409_feedback_closes_or_reopens(command):
    await command.deliver(missed("R1"))
    (ticket,) = await command.tickets()
    tid = ticket["ticket_id"]
    worker = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])

    refused = await command.client.post(f"/tickets/{tid}/resolve", json={"resolution": "called"}, headers=worker)
    assert refused.status_code == 409 and refused.json()["allowed"] == ["acknowledge", "reassign"], refused.text
    assert "allowed: acknowledge, reassign" in refused.json()["detail"]

    command.clock.advance(minutes=20)
    ack = await command.client.post(f"/tickets/{tid}/acknowledge", headers=worker)
    assert ack.status_code == 200 and ack.json()["stage"] == "responding"
    command.clock.advance(minutes=40)
    empty = await command.client.post(f"/tickets/{tid}/resolve", json={"resolution": ""}, headers=worker)
    assert empty.status_code == 422
    done = await command.client.post(
        f"/tickets/{tid}/resolve", json={"resolution": "Called: phone was off, checked in now"}, headers=worker
    )
    assert done.json()["stage"] == "resolved", done.text

    other = command.as_("resident", "R9")
    assert (
        await command.client.post(f"/tickets/{tid}/feedback", json={"satisfaction": 5}, headers=other)
    ).status_code == 403
    bad = await command.client.post(
        f"/tickets/{tid}/feedback", json={"satisfaction": 7}, headers=command.as_("resident", "R1")
    )
    assert bad.status_code == 422
    unhappy = await command.client.post(
        f"/tickets/{tid}/feedback",
        json={"satisfaction": 2, "comment": "nobody came"},
        headers=command.as_("resident", "R1"),
    )
    assert unhappy.json()["stage"] == "reopened", unhappy.text

    await command.client.post(f"/tickets/{tid}/acknowledge", headers=worker)
    await command.client.post(f"/tickets/{tid}/resolve", json={"resolution": "visited"}, headers=worker)
    closed = await command.client.post(f"/tickets/{tid}/feedback", json={"satisfaction": 4}, headers=command.staff)
    assert closed.json()["stage"] == "closed" and closed.json()["allowed"] == []
    again = await command.client.post(f"/tickets/{tid}/acknowledge", headers=worker)
    assert again.status_code == 409 and "closed" in again.json()["detail"]

    detail = (await command.client.get(f"/tickets/{tid}", headers=worker)).json()
    steps = [(h["action"], h["to_stage"], h["by"]) for h in detail["history"]]
    assert steps == [
        ("open", "discovered", "checkin"),  # the event's source service
        ("acknowledge", "responding", "gw-G1"),
        ("resolve", "resolved", "gw-G1"),
        ("feedback", "reopened", "R1"),
        ("acknowledge", "responding", "gw-G1"),
        ("resolve", "resolved", "gw-G1"),
        ("feedback", "closed", "cmd-duty"),
    ]
    assert "on the resident's behalf" in detail["history"][-1]["note"]
    types = [e["type"] for e in await command.outbox(topic="command.events.v1")]
    assert types == [
        "TicketOpened",
        "TicketAcknowledged",
        "TicketResolved",
        "TicketReopened",
        "TicketAcknowledged",
        "TicketResolved",
        "TicketClosed",
    ]

    # After it is closed, a new event about the same resident opens a new ticket.
    await command.deliver(missed("R1", day=DAY + timedelta(days=1)))
    assert len(await command.tickets(kind="followup")) == 2


async def test_a_fever_is_an_urgent_health_ticket_shared_minimised_with_partners(command):
    await command.deliver(fever())
    (ticket,) = await command.tickets()
    assert (ticket["kind"], ticket["department"], ticket["owner"], ticket["priority"]) == (
        "fever",
        "health",
        "health-duty",
        "urgent",
    )
    assert ticket["partners"] == ["health", "property"]

    (health,) = await command.outbox(topic="partner.health.v1")
    assert health["subject"] == ticket["ticket_id"]
    assert {k: health["data"][k] for k in ("phone", "room", "temperature_c", "symptoms", "resident_id")} == {
        "phone": "13800000000", "room": "401", "temperature_c": 38.6, "symptoms": ["cough"], "resident_id": "R1"}  # fmt: skip
    (prop,) = await command.outbox(topic="partner.property.v1")
    assert prop["data"]["building_id"] == "B01" and prop["data"]["action"].startswith("Disinfect")
    assert not HEALTH_FIELDS & set(prop["data"]) and "38.6" not in str(prop) and "13800000000" not in str(prop)
    assert await command.outbox(topic="partner.police.v1") == []

    # The health partner sees and works its department's tickets, and no one else's.
    await command.deliver(StockLow(item_id="I1", depot_id="D1", on_hand=2, threshold=10, item_name="masks"))
    health_partner = command.as_("partner", "h-1", department="health")
    police = command.as_("partner", "p-1", department="police")
    assert [t["kind"] for t in await command.tickets(headers=health_partner)] == ["fever"]
    assert await command.tickets(headers=police) == []
    assert (await command.client.get(f"/tickets/{ticket['ticket_id']}", headers=police)).status_code == 404
    refused = await command.client.post(f"/tickets/{ticket['ticket_id']}/acknowledge", headers=police)
    missing = await command.client.post("/tickets/T-000000000000/acknowledge", headers=police)
    assert refused.status_code == missing.status_code == 404 and refused.json() == missing.json()  # no existence oracle
    ack = await command.client.post(f"/tickets/{ticket['ticket_id']}/acknowledge", headers=health_partner)
    assert ack.status_code == 200, ack.text
    assert [e["data"]["stage"] for e in await command.outbox(topic="partner.health.v1")] == ["discovered", "responding"]


async def test_an_overdue_ticket_escalates_once_per_level(command):
    await command.deliver(missed("R1"))
    (ticket,) = await command.tickets()
    assert (await command.client.post("/escalations/run", headers=command.staff)).json() == {"escalated": 0}

    command.clock.advance(minutes=121)  # past respond_by (2 h), not acknowledged
    assert (await command.tickets(overdue="true"))[0]["overdue"] == "respond"
    results = [await command.service.escalate_overdue() for _ in range(2)]
    assert results == [1, 0]  # a second run (another replica) finds nothing new
    t = (await command.client.get(f"/tickets/{ticket['ticket_id']}", headers=command.staff)).json()
    assert (t["owner"], t["priority"], t["escalation_level"]) == ("grid-lead", "high", 1)
    (escalated,) = await command.outbox("TicketEscalated")
    assert (escalated["data"]["level"], escalated["data"]["previous_owner"], escalated["data"]["owner"]) == (
        1,
        "gw-G1",
        "grid-lead",
    )

    command.clock.advance(minutes=61)
    assert await command.service.escalate_overdue() == 1  # still not acknowledged: level 2
    assert [e["data"]["owner"] for e in await command.outbox("TicketEscalated")] == ["grid-lead", "cmd-lead"]

    agenda = (await command.client.get("/agenda", headers=command.staff)).json()
    assert agenda["overdue"][0]["ticket_id"] == ticket["ticket_id"]
    assert agenda["overdue"][0]["escalation_level"] == 2


async def test_health_data_never_reaches_property_or_police_however_a_ticket_moves(command):
    await command.deliver(fever())
    (ticket,) = await command.tickets()
    path = f"/tickets/{ticket['ticket_id']}/reassign"
    health_partner = command.as_("partner", "h-1", department="health")
    police = command.as_("partner", "p-1", department="police")

    to_police = await command.client.post(path, json={"owner": "police-duty"}, headers=command.staff)
    assert to_police.status_code == 422 and "carries health data" in to_police.json()["detail"]
    away = await command.client.post(path, json={"owner": "cmd-duty"}, headers=health_partner)
    assert away.status_code == 403 and "within its own department (health)" in away.json()["detail"]
    rule = {"kind": "fever", "department": "police", "owner_by": "department", "priority": "urgent", "title": "t"}
    owned = await command.client.put("/rules/event:HealthAnomalyReported", json=rule, headers=command.admin)
    assert owned.status_code == 422 and "not own them" in owned.json()["detail"]
    assert (
        await command.client.get(path.removesuffix("/reassign"), headers=police)
    ).status_code == 404  # nothing moved

    # Nor does an escalation climb into police when the directory says police supervises
    # health: the command center's duty officer gets it instead.
    up = await command.client.put("/directory/people/health-lead", headers=command.admin, json={
        "name": "卫健科长 Zheng", "role": "department_head", "department": "health", "supervisor_id": "police-duty"})  # fmt: skip
    assert up.status_code == 200, up.text
    command.clock.advance(minutes=31)
    await command.service.escalate_overdue()
    command.clock.advance(minutes=61)
    await command.service.escalate_overdue()
    ticket_path = path.removesuffix("/reassign")
    assert (await command.client.get(ticket_path, headers=command.staff)).json()["owner"] == "cmd-duty"
    officer = command.as_("partner", "police-duty", department="police")
    assert (await command.client.get(ticket_path, headers=officer)).status_code == 404
    assert await command.outbox(topic="partner.police.v1") == []
    assert (await command.client.get(ticket_path, headers=health_partner)).json()["facts"]["temperature_c"] == 38.6


async def test_a_ticket_reassigned_into_a_partner_department_reaches_its_topic(command):
    await command.deliver(SamplingLagging(round_id="N1", building_id="B01", completion_rate=0.4, grid_id="G1"))
    (ticket,) = await command.tickets()
    assert ticket["partners"] == [] and await command.outbox(topic="partner.property.v1") == []
    moved = await command.client.post(
        f"/tickets/{ticket['ticket_id']}/reassign", json={"owner": "property-duty"}, headers=command.staff
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["department"], moved.json()["partners"]) == ("property", ["property"])
    (shared,) = await command.outbox(topic="partner.property.v1")
    property_ = command.as_("partner", "p-2", department="property")
    (seen,) = await command.tickets(headers=property_)
    # Its topic names the ticket by property's own reference, which its view gives too.
    assert seen["ticket_id"] == ticket["ticket_id"] and shared["subject"] == seen["reference"] != ticket["ticket_id"]
    assert shared["data"]["action"] == "Mobilise the building's residents for sampling before the round closes."

    # A complaint is free text, which may be anyone's health: it does not move to police.
    complaint = await command.client.post("/tickets", json={"category": "complaint", "description": "a fight in the lobby of B01"},
                                          headers=command.staff)  # fmt: skip
    refused = await command.client.post(
        f"/tickets/{complaint.json()['ticket_id']}/reassign", json={"owner": "police-duty"}, headers=command.staff
    )
    assert refused.status_code == 422 and "carries health data" in refused.json()["detail"]
    assert await command.outbox(topic="partner.police.v1") == []


async def test_an_admin_adds_a_grid_worker_who_then_owns_that_grids_follow_ups(command):
    added = await command.client.put("/directory/people/gw-G9", headers=command.admin, json={
        "name": "网格员 Ma (G9)", "role": "grid_worker", "department": "grid", "supervisor_id": "grid-lead", "grid_ids": ["G9"]})  # fmt: skip
    assert added.status_code == 200, added.text
    await command.deliver(missed("R9", grid="G9"))
    (ticket,) = await command.tickets()
    assert ticket["owner"] == "gw-G9"
    people = (await command.client.get("/directory/people", headers=command.staff)).json()
    assert next(p for p in people if p["person_id"] == "gw-G9")["grid_ids"] == ["G9"]


async def test_a_reopened_ticket_climbs_the_chain_again_when_it_misses_its_new_deadlines(command):
    await command.deliver(missed("R1"))
    (ticket,) = await command.tickets()
    ticket_id = ticket["ticket_id"]
    command.clock.advance(minutes=121)
    for _ in range(4):  # levels 1, 2, 3, then the top (COMMAND_ESCALATION_MAX_LEVEL=3): nothing more
        await command.service.escalate_overdue()
        command.clock.advance(minutes=61)
    assert (await command.client.get(f"/tickets/{ticket_id}", headers=command.staff)).json()["escalation_level"] == 3
    for path, body in (
        ("acknowledge", None),
        ("resolve", {"resolution": "called"}),
        ("feedback", {"satisfaction": 1, "comment": "nobody came"}),
    ):
        answer = await command.client.post(f"/tickets/{ticket_id}/{path}", json=body, headers=command.staff)
        assert answer.status_code == 200, answer.text
    reopened = (await command.client.get(f"/tickets/{ticket_id}", headers=command.staff)).json()
    assert (reopened["stage"], reopened["escalation_level"], reopened["reopen_count"]) == ("reopened", 0, 1)

    command.clock.advance(minutes=241)  # past the reopened ticket's respond_by (the SLA of its raised priority)
    assert await command.service.escalate_overdue() == 1
    again = (await command.client.get(f"/tickets/{ticket_id}", headers=command.staff)).json()
    assert again["escalation_level"] == 1
    levels = [e["data"]["level"] for e in await command.outbox("TicketEscalated")]
    assert levels == [1, 2, 3, 1]


async def test_hand_reports_are_routed_and_residents_see_only_their_own(command):
    await command.deliver(
        ResidentRegistered(resident_id="R1", community_id="C1", grid_id="G3", building_id="B09", lat=31.23, lon=121.47)
    )
    resident = command.as_("resident", "R1")
    response = await command.client.post(
        "/tickets",
        json={"category": "isolation_difficulty", "description": "Out of insulin, in isolation"},
        headers=resident,
    )
    assert response.status_code == 201, response.text
    mine = response.json()
    assert (mine["kind"], mine["owner"], mine["grid_id"], mine["building_id"], mine["resident_id"]) == (
        "isolation_difficulty", "gw-G3", "G3", "B09", "R1")  # fmt: skip
    other = await command.client.post(
        "/tickets", json={"category": "complaint", "description": "noise"}, headers=command.as_("resident", "R2")
    )
    assert other.json()["owner"] == "cmd-duty"
    assert [t["ticket_id"] for t in await command.tickets(headers=resident)] == [mine["ticket_id"]]
    assert (await command.client.get(f"/tickets/{other.json()['ticket_id']}", headers=resident)).status_code == 404

    unknown = await command.client.post("/tickets", json={"category": "aliens", "description": "x"}, headers=resident)
    assert unknown.status_code == 422 and "known: " in unknown.json()["detail"]
    police = await command.client.post(
        "/tickets",
        json={"category": "public_order", "description": "Crowd at the gate", "building_id": "B02"},
        headers=command.staff,
    )
    (message,) = await command.outbox(topic="partner.police.v1")
    assert message["data"]["summary"] is None and "Crowd" not in json.dumps(message)  # building, action, reference
    assert message["data"]["building_id"] == "B02" and message["subject"] != police.json()["ticket_id"]
    assert (await command.client.get("/tickets", headers=command.as_("volunteer", "V1"))).json() == []


async def test_reassign_and_stock_escalating_from_low_to_out(command):
    await command.deliver(StockLow(item_id="I1", depot_id="D1", on_hand=2, threshold=10, item_name="masks"))
    await command.deliver(StockOut(item_id="I1", depot_id="D1", item_name="masks"))
    (ticket,) = await command.tickets()
    assert (ticket["priority"], ticket["event_count"], ticket["owner"]) == ("high", 2, "supplies-officer")
    officer = command.as_("supplies_officer", "supplies-officer")
    bad = await command.client.post(
        f"/tickets/{ticket['ticket_id']}/reassign", json={"owner": "nobody"}, headers=officer
    )
    assert bad.status_code == 422 and "directory" in bad.json()["detail"]
    moved = await command.client.post(
        f"/tickets/{ticket['ticket_id']}/reassign",
        json={"owner": "dispatcher", "reason": "transfer run"},
        headers=officer,
    )
    assert (moved.json()["owner"], moved.json()["department"]) == ("dispatcher", "dispatch"), moved.text
    assert (await command.outbox("TicketReassigned"))[0]["data"]["previous_owner"] == "supplies-officer"


async def test_agenda_figures_come_from_consumed_events(command):
    registered = [
        ResidentRegistered(
            resident_id=f"R{i}", community_id="C1", grid_id="G1", building_id="B01", lat=31.23, lon=121.47
        )
        for i in range(4)
    ]
    await command.deliver(*registered)
    command.clock.advance(hours=1)
    await command.deliver(
        CheckInSubmitted(resident_id="R0", date=DAY, temperature_c=36.5, channel="self"),
        CheckInSubmitted(resident_id="R1", date=DAY, temperature_c=36.6, channel="self"),
        CheckInSubmitted(resident_id="R1", date=DAY, temperature_c=36.7, channel="self"),  # a second one the same day
        missed("R2"),
        missed("R3"),
    )
    tickets = await command.tickets()
    worker = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])
    for t in tickets:
        command.clock.advance(minutes=10)
        await command.client.post(f"/tickets/{t['ticket_id']}/acknowledge", headers=worker)
    command.clock.advance(minutes=30)
    await command.client.post(
        f"/tickets/{tickets[0]['ticket_id']}/resolve", json={"resolution": "called"}, headers=worker
    )
    await command.client.post(
        f"/tickets/{tickets[0]['ticket_id']}/feedback", json={"satisfaction": 5}, headers=command.staff
    )

    figures = (await command.client.get("/kpis", params={"date": str(DAY)}, headers=command.staff)).json()
    assert figures["checkin"] == {"expected": 4, "checked_in": 2, "missed": 2, "completion_rate": 0.5}
    assert figures["followups"] == {
        "opened": 2, "resolved": 1, "resolution_rate": 0.5,
        "key_population": {"opened": 0, "resolved": 0, "resolution_rate": None},
    }  # fmt: skip
    assert figures["median_minutes_to_respond"] == 15.0  # 10 and 20 minutes
    assert figures["median_minutes_to_resolve"] == 50.0
    assert figures["satisfaction"]["average"] == 5
    assert figures["open_by_stage"] == {"discovered": 0, "responding": 1, "resolved": 0, "reopened": 0}

    command.clock.set(command.clock.now() + timedelta(hours=12))  # past the same-day deadline
    agenda = (
        await command.client.get("/agenda", params={"date": str(DAY + timedelta(days=1))}, headers=command.staff)
    ).json()
    assert [t["ticket_id"] for t in agenda["overdue"]] == [tickets[1]["ticket_id"]]
    assert {t["ticket_id"] for t in agenda["new"]} == {t["ticket_id"] for t in tickets}
    (grid,) = agenda["open_by_department"]
    assert grid["department"] == "grid" and grid["owners"][0]["owner"] == "gw-G1"
    md = await command.client.get(
        "/agenda", params={"date": str(DAY + timedelta(days=1)), "format": "markdown"}, headers=command.staff
    )
    assert md.headers["content-type"].startswith("text/markdown")
    text = md.text
    assert text.index("Overdue") < text.index("New since") < text.index("Open tickets") < text.index("Figures")
    assert tickets[1]["ticket_id"] in text
    assert (await command.client.get("/agenda", headers=command.as_("resident", "R1"))).status_code == 403


async def test_heatmap_counts_problems_in_h3_cells(command):
    await command.deliver(
        ResidentRegistered(
            resident_id="R1", community_id="C1", grid_id="G1", building_id="B01", lat=31.2304, lon=121.4737
        ),
        ResidentRegistered(
            resident_id="R2", community_id="C1", grid_id="G2", building_id="B02", lat=31.2500, lon=121.5000
        ),
    )
    fevers = [fever(f"R{n}") for n in range(10, 15)]  # five fevers: as few as a cell shows (k = 5)
    await command.deliver(missed("R1"), *fevers, missed("R2", grid="G2", building="B02"))  # fevers carry coordinates
    geo = (await command.client.get("/heatmap", headers=command.staff)).json()
    assert geo["type"] == "FeatureCollection"
    counts = {f["properties"]["h3"]: f["properties"]["counts"] for f in geo["features"]}
    assert sorted(sum(c.values()) for c in counts.values()) == [1, 6]
    assert {"fever": 5, "missed_checkin": 1} in counts.values()
    ring = geo["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 7
    only = (await command.client.get("/heatmap", params={"kind": "fever"}, headers=command.staff)).json()
    assert [f["properties"]["counts"] for f in only["features"]] == [{"fever": 5}]
    later = command.clock.now() + timedelta(hours=1)
    assert (await command.client.get("/heatmap", params={"since": later.isoformat()}, headers=command.staff)).json()[
        "features"
    ] == []
    assert (await command.client.get("/heatmap", params={"resolution": 12}, headers=command.staff)).status_code == 422

    complaint = await command.client.post("/tickets", json={"category": "complaint", "description": "rubbish not collected"},
                                          headers=command.as_("resident", "R2"))  # fmt: skip
    assert complaint.status_code == 201, complaint.text  # a hand report is placed where its resident lives
    complaints = (await command.client.get("/heatmap", params={"kind": "complaint"}, headers=command.staff)).json()[
        "features"
    ]
    assert [f["properties"]["counts"] for f in complaints] == [{"complaint": 1}]
    r2 = next(f["properties"]["h3"] for f in geo["features"] if f["properties"]["counts"] == {"missed_checkin": 1})
    assert complaints[0]["properties"]["h3"] == r2


async def test_an_admin_edits_rules_sla_and_directory_bad_edits_change_nothing(command):
    rule = {"kind": "followup", "department": "grid", "owner_by": "department", "priority": "high",
            "title": "Call {resident_id}", "action": "call"}  # fmt: skip
    assert (await command.client.put("/rules/event:CheckInMissed", json=rule, headers=command.staff)).status_code == 403
    bad = await command.client.put(
        "/rules/event:CheckInMissed", json={**rule, "department": "mars"}, headers=command.admin
    )
    assert bad.status_code == 422 and "unknown department 'mars'" in bad.json()["detail"]
    assert (
        await command.client.put(
            "/sla/followup/high", json={"respond_minutes": 90, "resolve_minutes": 30}, headers=command.admin
        )
    ).status_code == 422
    loop = await command.client.put(
        "/directory/people/grid-lead",
        json={"name": "Sun", "role": "grid_leader", "department": "grid", "supervisor_id": "gw-G1"},
        headers=command.admin,
    )
    assert loop.status_code == 422 and "loop" in loop.json()["detail"]

    ok = await command.client.put("/rules/event:CheckInMissed", json=rule, headers=command.admin)
    assert ok.status_code == 200, ok.text
    assert (
        await command.client.put(
            "/sla/followup/high", json={"respond_minutes": 15, "resolve_minutes": 60}, headers=command.admin
        )
    ).status_code == 200
    await command.deliver(missed("R1"))
    (ticket,) = await command.tickets()
    assert (ticket["owner"], ticket["priority"], ticket["title"]) == ("grid-lead", "high", "Call R1")
    assert ticket["respond_by"] < ticket["resolve_by"]
    rules = (await command.client.get("/rules", headers=command.staff)).json()
    assert next(r for r in rules if r["trigger"] == "event:CheckInMissed")["owner_by"] == "department"
    people = (await command.client.get("/directory/people", headers=command.staff)).json()
    assert (
        next(p for p in people if p["person_id"] == "grid-lead")["supervisor_id"] == "cmd-lead"
    )  # the loop was refused


async def test_two_events_about_one_problem_in_one_batch_make_one_ticket(command):
    await command.deliver(missed("R5"), missed("R5", days=2, day=DAY + timedelta(days=1)), missed("R6"))
    tickets = {t["subject_id"]: t for t in await command.tickets()}
    assert set(tickets) == {"R5", "R6"}
    assert (tickets["R5"]["event_count"], tickets["R5"]["priority"]) == (2, "high")


async def test_a_buildings_place_is_used_once_learned_even_after_it_was_found_unknown(command):
    """A batch loads its buildings' places once; a building found unknown is looked up again
    once a resident of it is registered, in a later batch or earlier in the same one."""
    await command.deliver(missed("R1", grid="G4", building="B05"))  # B05 unknown: no place, no heat-map point
    await command.deliver(
        ResidentRegistered(
            resident_id="R1", community_id="C1", grid_id="G4", building_id="B05", lat=31.2304, lon=121.4737
        )
    )
    await command.deliver(missed("R2", grid="G4", building="B05"))
    await command.deliver(
        ResidentRegistered(
            resident_id="R3", community_id="C1", grid_id="G5", building_id="B06", lat=31.2500, lon=121.5000
        ),
        missed("R3", grid="G5", building="B06"),
    )
    assert sorted(t["subject_id"] for t in await command.tickets()) == ["R1", "R2", "R3"]
    geo = (await command.client.get("/heatmap", headers=command.staff)).json()  # R2 and R3 located, R1 not
    assert sorted((f["properties"]["center"][1] > 31.24, f["properties"]["count"]) for f in geo["features"]) == [
        (False, 1),
        (True, 1),
    ]


async def test_openapi_and_asyncapi_describe_the_service(command):
    openapi = (await command.client.get("/openapi.json")).json()
    for path in ("/tickets", "/tickets/{ticket_id}/feedback", "/agenda", "/heatmap", "/kpis", "/rules/{trigger}"):
        assert path in openapi["paths"], path
    asyncapi = json.dumps((await command.client.get("/asyncapi")).json())
    for name in (
        "command.events.v1",
        "partner.health.v1",
        "partner.property.v1",
        "partner.police.v1",
    ):  # subscribers show when attached
        assert name in asyncapi, name


async def test_two_replicas_escalating_at_once_escalate_each_ticket_once(command):
    await command.deliver(missed("R1"), missed("R2", grid="G2"))
    command.clock.advance(minutes=121)
    results = await asyncio.gather(*(command.service.escalate_overdue() for _ in range(3)))
    assert sum(results) == 2  # the unique (ticket, level) row lets one of them act per ticket
    assert len(await command.outbox("TicketEscalated")) == 2


async def test_a_stale_read_cannot_open_a_second_ticket_the_batch_is_replayed_one_by_one(command, monkeypatch):
    """A replica that did not see the open ticket (a concurrent writer) hits the unique
    open_key; the batch is rolled back and applied event by event, which finds the ticket."""
    await command.deliver(missed("R1"))
    stores = command.service.stores

    async def stale(uow, events):  # as if another replica had opened the ticket just after our read
        await stores.begin(uow, [])
        stores.of(uow).looked_up = {"followup:R1", "followup:R7"}

    monkeypatch.setattr(command.runner.consumer, "prepare", stale)
    await command.deliver(missed("R1", days=2, day=DAY + timedelta(days=1)), missed("R7"))
    listed = await command.tickets()
    assert sorted(t["subject_id"] for t in listed) == ["R1", "R7"]  # no second ticket for R1
    tickets = {t["subject_id"]: t for t in listed}
    assert (tickets["R1"]["event_count"], tickets["R1"]["priority"]) == (2, "high")


async def test_requests_show_on_the_heatmap_and_sampling_lag_finds_the_buildings_grid_worker(command):
    await command.deliver(
        ResidentRegistered(
            resident_id="R1", community_id="C1", grid_id="G2", building_id="B07", lat=31.2304, lon=121.4737
        )
    )
    now = command.clock.now()
    await command.deliver(
        RequestRaised(
            request_id="Q1", resident_id="R1", category="medicine", priority="high", due_by=now + timedelta(hours=2)
        ),
        SamplingLagging(round_id="N1", building_id="B07", completion_rate=0.4),  # no grid in the event
    )
    geo = (await command.client.get("/heatmap", headers=command.staff)).json()
    assert [f["properties"]["counts"] for f in geo["features"]] == [{"request": 1, "sampling_lagging": 1}]
    (ticket,) = await command.tickets()
    assert (ticket["kind"], ticket["grid_id"], ticket["owner"]) == ("sampling_lagging", "G2", "gw-G2")


async def test_an_event_on_a_resolved_ticket_reopens_it_with_fresh_deadlines(command):
    await command.deliver(missed("R1"))
    (ticket,) = await command.tickets()
    worker = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])
    await command.client.post(f"/tickets/{ticket['ticket_id']}/acknowledge", headers=worker)
    await command.client.post(f"/tickets/{ticket['ticket_id']}/resolve", json={"resolution": "called"}, headers=worker)
    command.clock.advance(days=1)
    await command.deliver(missed("R1", days=2, day=DAY + timedelta(days=1)))
    (again,) = await command.tickets()
    assert again["ticket_id"] == ticket["ticket_id"] and again["stage"] == "reopened" and again["reopen_count"] == 1
    assert again["respond_by"] > ticket["resolve_by"]  # deadlines from the reopening, not the first day
    (reopened,) = await command.outbox("TicketReopened")
    assert "again after it was resolved" in reopened["data"]["reason"]


async def test_a_batch_looks_its_buildings_up_once_even_when_the_cache_expires_meanwhile(database_url, clock):
    """With a cache that expires at once (COMMAND_CONFIG_CACHE_S=0), a batch still loads its
    buildings' places in one query, not one per event when their entries go stale."""
    from sqlalchemy import event

    from command.main import create_app
    from conftest import Harness, settings_for
    from support import serving

    app = create_app(settings_for(database_url, config_cache_s=0.0), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client)) as command:
        await command.deliver(
            ResidentRegistered(
                resident_id="R0", community_id="C1", grid_id="G1", building_id="B01", lat=31.2304, lon=121.4737
            )
        )
        looked_up: list[str] = []
        engine = command.runtime.db.engine.sync_engine
        listen = (
            lambda conn, cursor, statement, *rest: looked_up.append(statement)
            if "known_building" in statement
            else None
        )
        event.listen(engine, "before_cursor_execute", listen)
        try:
            await command.deliver(*(missed(f"R{i}", building="B01") for i in range(1, 6)), missed("R9", building="B02"))
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        assert len(looked_up) == 1, looked_up
        tickets = await command.tickets()
        assert len(tickets) == 6
        geo = (await command.client.get("/heatmap", headers=command.staff)).json()  # B01's five located, B02 unknown
        assert [f["properties"]["count"] for f in geo["features"]] == [5]
