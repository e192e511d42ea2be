"""Issue 19's findings against the command center, each tried again as it was shown from
outside, and each now failing to get health data where it does not belong."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from command.models import RuleRow
from command.settings import CommandSettings
from common.events.checkin import CheckInMissed, HealthAnomalyReported, ResidentRegistered

DAY = date(2026, 11, 21)
HEALTH_VALUES = ("39.17", "13911112222", "李四", "cough", "室301号")


def fever(resident="R1", building="B01", grid="G1", lat=31.2304, lon=121.4737) -> HealthAnomalyReported:
    return HealthAnomalyReported(
        resident_id=resident, date=DAY, temperature_c=39.17, symptoms=["cough"], grid_id=grid, building_id=building,
        fever=True, name="李四", phone="13911112222", unit="1", room="室301号", lat=lat, lon=lon,
    )  # fmt: skip


def leaks(anything) -> list[str]:
    text = anything if isinstance(anything, str) else json.dumps(anything, ensure_ascii=False, default=str)
    return [v for v in HEALTH_VALUES if v in text]


async def test_an_admin_rule_that_names_health_facts_for_police_or_property_is_refused(command):
    police_owns = {"kind": "fever", "department": "police", "owner_by": "department", "priority": "urgent",
                   "title": "Visit {name}", "action": "Visit {name} {phone} room {room}: {temperature_c}C",
                   "also_share": {"property": "{phone} {temperature_c}"}}  # fmt: skip
    refused = await command.client.put("/rules/event:HealthAnomalyReported", json=police_owns, headers=command.admin)
    assert refused.status_code == 422, refused.text

    health_owns = {**police_owns, "department": "health", "title": "Fever {resident_id}", "action": "Call {phone}"}
    refused = await command.client.put("/rules/event:HealthAnomalyReported", json=health_owns, headers=command.admin)
    assert refused.status_code == 422 and "also_share action for property names phone, temperature_c" in refused.text

    public_order = {"kind": "public_order", "department": "police", "owner_by": "department", "priority": "high",
                    "title": "Public order", "action": "Visit {name} {phone} about {description}"}  # fmt: skip
    refused = await command.client.put("/rules/category:public_order", json=public_order, headers=command.admin)
    assert refused.status_code == 422 and "names description, name, phone" in refused.text

    for title in ("{resident_id:>999999999}", "{resident_id!r}", "{resident_id.__class__}", "{0}", "{}", "{x[0]}"):
        rule = {**health_owns, "title": title, "action": "Call the resident", "also_share": {}}
        answer = await command.client.put("/rules/event:HealthAnomalyReported", json=rule, headers=command.admin)
        assert answer.status_code == 422 and "not a plain" in answer.text, (title, answer.text)
    temperature_in_title = {**health_owns, "title": "Fever {temperature_c}", "action": "Call {phone}", "also_share": {}}
    answer = await command.client.put("/rules/event:HealthAnomalyReported", json=temperature_in_title, headers=command.admin)  # fmt: skip
    assert answer.status_code == 422 and "title names temperature_c" in answer.text

    # Health's own action may name what a doctor needs; property's still only the building.
    allowed = {**health_owns, "also_share": {"property": "Disinfect {building_id}"}}
    assert (await command.client.put("/rules/event:HealthAnomalyReported", json=allowed, headers=command.admin)).status_code == 200  # fmt: skip
    await command.deliver(fever())
    assert leaks(await command.outbox(topic="partner.property.v1")) == []
    assert await command.outbox(topic="partner.police.v1") == []
    (health,) = await command.outbox(topic="partner.health.v1")
    assert health["data"]["action"] == "Call 13911112222" and health["data"]["temperature_c"] == 39.17


async def test_reassigning_a_tagged_residents_ticket_to_police_shows_police_no_tags(command):
    await command.deliver(CheckInMissed(resident_id="R1", date=DAY, consecutive_days=2, grid_id="G1",
                                        building_id="B01", tags=["mental_health", "pregnant"]))  # fmt: skip
    (ticket,) = await command.tickets()
    moved = await command.client.post(
        f"/tickets/{ticket['ticket_id']}/reassign", json={"owner": "police-duty"}, headers=command.staff
    )
    assert moved.status_code == 422 and "carries health data" in moved.json()["detail"]
    police = command.as_("partner", "police-duty", department="police")
    assert (await command.client.get(f"/tickets/{ticket['ticket_id']}", headers=police)).status_code == 404
    assert await command.tickets(headers=police) == [] and await command.outbox(topic="partner.police.v1") == []

    # The same follow-up without health tags may go; police see the building, the action, their reference.
    await command.deliver(CheckInMissed(resident_id="R2", date=DAY, consecutive_days=1, grid_id="G1",
                                        building_id="B02", tags=["elderly"]))  # fmt: skip
    plain = next(t for t in await command.tickets() if t["subject_id"] == "R2")
    moved = await command.client.post(
        f"/tickets/{plain['ticket_id']}/reassign", json={"owner": "police-duty"}, headers=command.staff
    )
    assert moved.status_code == 200, moved.text
    (seen,) = await command.tickets(headers=police)
    (message,) = await command.outbox(topic="partner.police.v1")
    for shown in (seen, message["data"]):
        assert "R2" not in json.dumps(shown) and "elderly" not in json.dumps(shown)
    assert (seen["building_id"], seen["facts"], seen["resident_id"]) == ("B02", {}, None)
    assert message["data"]["ticket_id"] == seen["reference"] != plain["ticket_id"]


async def test_a_residents_own_words_never_become_the_police_summary(command):
    await command.deliver(ResidentRegistered(resident_id="R7", community_id="C1", grid_id="G1", building_id="B03"))
    words = "HIV meds ran out, I am in isolation with fever"
    complaint = await command.client.post(
        "/tickets", json={"category": "complaint", "description": words}, headers=command.as_("resident", "R7")
    )
    assert complaint.status_code == 201, complaint.text
    moved = await command.client.post(
        f"/tickets/{complaint.json()['ticket_id']}/reassign", json={"owner": "police-duty"}, headers=command.staff
    )
    assert moved.status_code == 422
    # Filed straight to police by the resident's choice of category: police get the building and the action.
    filed = await command.client.post(
        "/tickets", json={"category": "public_order", "description": words}, headers=command.as_("resident", "R7")
    )
    assert filed.status_code == 201, filed.text
    police = command.as_("partner", "police-duty", department="police")
    seen = (await command.client.get(f"/tickets/{filed.json()['ticket_id']}", headers=police)).json()
    (message,) = await command.outbox(topic="partner.police.v1")
    for shown in (seen, message):
        assert "HIV" not in json.dumps(shown) and "R7" not in json.dumps(shown)
    assert message["data"]["summary"] is None and message["data"]["building_id"] == "B03"
    assert all(entry["note"] is None for entry in seen["history"])


async def test_the_default_fever_title_carries_no_health_value_on_the_bus_in_the_agenda_or_notices(command):
    await command.deliver(fever())
    (opened,) = await command.outbox("TicketOpened")
    assert leaks(opened) == [] and opened["data"]["title"] == "Health check: resident R1 in building B01"
    agenda = await command.client.get("/agenda", headers=command.staff)
    markdown = await command.client.get("/agenda", params={"format": "markdown"}, headers=command.staff)
    assert leaks(agenda.json()) == [] and leaks(markdown.text) == []

    # A rule saved before templates were checked still names the temperature: it shows as "?",
    # and the agenda shows such a ticket by kind and building whatever its stored title.
    async with command.runtime.db.session() as session:
        row = (
            await session.execute(select(RuleRow).where(RuleRow.trigger == "event:HealthAnomalyReported"))
        ).scalar_one()
        row.title = "Health anomaly: {resident_id} {temperature_c} °C {symptoms} {phone}"
        await session.commit()
    command.service.forget_config()
    await command.deliver(fever("R2", building="B02"))
    titles = [e["data"]["title"] for e in await command.outbox("TicketOpened")]
    assert titles[-1] == "Health anomaly: R2 ? °C ? ?"
    markdown = await command.client.get("/agenda", params={"format": "markdown"}, headers=command.staff)
    assert "fever: B02" in markdown.text and leaks(markdown.text) == []

    # Resolution and feedback text stay in the ticket's history, off command.events.v1.
    tid = opened["data"]["ticket_id"]
    for action, body in (("acknowledge", None), ("resolve", {"resolution": "39.17 at the visit, cough"}),
                         ("feedback", {"satisfaction": 4, "comment": "call 13911112222 next time"})):  # fmt: skip
        assert (
            await command.client.post(f"/tickets/{tid}/{action}", json=body, headers=command.staff)
        ).status_code == 200
    assert leaks(await command.outbox(topic="command.events.v1")) == []


async def test_a_building_lead_sees_needs_attention_never_the_temperature_phone_or_symptoms(command):
    await command.deliver(fever())
    lead = command.as_("building_lead", "BL-1", building_ids=["B01"])
    (seen,) = await command.tickets(headers=lead)
    detail = (await command.client.get(f"/tickets/{seen['ticket_id']}", headers=lead)).json()
    for shown in (seen, detail):
        assert leaks(shown) == [] and shown["kind"] == "needs_attention" and shown["facts"] == {}
    assert detail["building_id"] == "B01" and (detail["owner"], detail["department"]) == ("—", "—")
    assert "health" not in json.dumps(detail) and all(h["note"] is None for h in detail["history"])
    for oracle in ({"kind": "fever"}, {"department": "health"}, {"owner": "health-duty"}):
        assert (await command.client.get("/tickets", params=oracle, headers=lead)).status_code == 403


async def test_metrics_carry_no_per_cell_health_count_and_the_heat_map_is_scoped_bounded_and_k_anonymous(command):
    await command.deliver(
        ResidentRegistered(resident_id="R1", community_id="C1", grid_id="G1", building_id="B01", lat=31.2304, lon=121.4737),
        ResidentRegistered(resident_id="R2", community_id="C1", grid_id="G2", building_id="B02", lat=31.2500, lon=121.5000),
    )  # fmt: skip
    await command.deliver(fever("R1"), CheckInMissed(resident_id="R2", date=DAY, consecutive_days=1, grid_id="G2",
                                                     building_id="B02"))  # fmt: skip
    await command.runtime.run_job("metrics")
    metrics = (await command.client.get("/metrics")).text
    cells = [line for line in metrics.splitlines() if line.startswith("firstline_command_signals_by_cell{")]
    assert cells and not [line for line in cells if 'kind="fever"' in line]
    assert 'firstline_command_health_signals_by_grid{grid_id="G1",kind="fever"} 1.0' in metrics

    # One household's fever is not a cell anyone sees; five are, to staff and the grid's worker.
    staff_map = (await command.client.get("/heatmap", params={"kind": "fever"}, headers=command.staff)).json()
    assert staff_map["features"] == []
    await command.deliver(*(fever(f"R1{n}") for n in range(4)))
    staff_map = (await command.client.get("/heatmap", params={"kind": "fever"}, headers=command.staff)).json()
    assert [f["properties"]["counts"] for f in staff_map["features"]] == [{"fever": 5}]
    g1 = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])
    g2 = command.as_("grid_worker", "gw-G2", grid_ids=["G2"])
    assert len((await command.client.get("/heatmap", headers=g1)).json()["features"]) == 1
    theirs = (await command.client.get("/heatmap", headers=g2)).json()["features"]
    assert [f["properties"]["counts"] for f in theirs] == [{"missed_checkin": 1}]
    dispatcher = (await command.client.get("/heatmap", headers=command.as_("dispatcher", "dispatcher"))).json()
    assert "fever" not in json.dumps(dispatcher) and dispatcher["features"]
    since_1970 = datetime(1970, 1, 1, tzinfo=UTC).isoformat()
    old = await command.client.get("/heatmap", params={"since": since_1970}, headers=command.staff)
    assert old.status_code == 422 and "COMMAND_HEATMAP_MAX_DAYS" in old.text
    recent = (command.clock.now() - timedelta(days=13)).isoformat()
    assert (await command.client.get("/heatmap", params={"since": recent}, headers=command.staff)).status_code == 200


async def test_partners_read_the_directory_without_phone_numbers(command):
    partner = command.as_("partner", "p-1", department="police")
    people = (await command.client.get("/directory/people", headers=partner)).json()
    assert people and all(p["phone"] is None for p in people)
    staff = (await command.client.get("/directory/people", headers=command.staff)).json()
    assert any(p["phone"] for p in staff)


async def test_each_partner_department_names_a_ticket_by_its_own_reference(command):
    rule = {"kind": "fever", "department": "health", "owner_by": "department", "priority": "urgent",
            "title": "Health check: {resident_id}", "action": "Call the resident",
            "also_share": {"property": "Disinfect {building_id}", "police": "Keep the entrance of {building_id} clear"}}  # fmt: skip
    assert (await command.client.put("/rules/event:HealthAnomalyReported", json=rule, headers=command.admin)).status_code == 200  # fmt: skip
    await command.deliver(fever())
    (ticket,) = await command.tickets()
    (health,) = await command.outbox(topic="partner.health.v1")
    (prop,) = await command.outbox(topic="partner.property.v1")
    (police,) = await command.outbox(topic="partner.police.v1")
    references = {health["data"]["ticket_id"], prop["data"]["ticket_id"], police["data"]["ticket_id"]}
    assert health["data"]["ticket_id"] == ticket["ticket_id"] and len(references) == 3  # no two join
    assert prop["subject"] == prop["data"]["ticket_id"] and prop["data"]["kind"] == "building_action"
    assert police["data"]["action"] == "Keep the entrance of B01 clear"
    again = await command.client.post(f"/tickets/{ticket['ticket_id']}/acknowledge", headers=command.staff)
    assert again.status_code == 200
    assert {e["data"]["ticket_id"] for e in await command.outbox(topic="partner.property.v1")} == {
        prop["data"]["ticket_id"]
    }


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5"])
def test_the_reference_key_fails_closed_outside_a_loopback_development_stack(host, monkeypatch):
    monkeypatch.setenv("FIRSTLINE_PORTAL_URL", "https://portal.example")
    with pytest.raises(ValueError, match="COMMAND_PARTNER_REFERENCE_KEY"):
        CommandSettings(host=host)
    with pytest.raises(ValueError, match="COMMAND_PARTNER_REFERENCE_KEY"):
        CommandSettings(host=host, partner_reference_key="short")
    assert CommandSettings(host=host, partner_reference_key="k" * 32).reference_key == b"k" * 32
    assert CommandSettings(host="127.0.0.1").partner_reference_key  # the development default, on loopback only


async def test_a_report_by_hand_names_only_residents_the_reporter_may_act_for_placed_by_the_register(command):
    await command.deliver(
        ResidentRegistered(resident_id="R1", community_id="C1", grid_id="G1", building_id="B01", lat=31.23, lon=121.47),
        ResidentRegistered(resident_id="R3", community_id="C1", grid_id="G3", building_id="B03"),
    )  # fmt: skip
    body = {"category": "health_concern", "description": "feels unwell", "resident_id": "R1", "priority": "urgent"}
    volunteer = command.as_("volunteer", "V-1")
    assert (await command.client.post("/tickets", json=body, headers=volunteer)).status_code == 403  # no priority
    about_r1 = await command.client.post("/tickets", json={**body, "priority": None}, headers=volunteer)
    about_nobody = await command.client.post(
        "/tickets", json={**body, "priority": None, "resident_id": "R-nobody"}, headers=volunteer
    )
    assert about_r1.status_code == about_nobody.status_code == 404
    assert about_r1.json()["detail"].replace("R1", "X") == about_nobody.json()["detail"].replace("R-nobody", "X")
    lead = command.as_("building_lead", "BL-3", building_ids=["B03"])
    other_building = await command.client.post("/tickets", json={**body, "priority": None}, headers=lead)
    assert other_building.status_code == 404 and "B01" not in other_building.text and "G1" not in other_building.text
    theirs = await command.client.post("/tickets", json={**body, "priority": None, "resident_id": "R3"}, headers=lead)
    assert theirs.status_code == 201 and theirs.json()["building_id"] == "B03"

    # A resident's report is placed where the register says they live, whatever the body says.
    resident = command.as_("resident", "R1")
    placed = await command.client.post(
        "/tickets", json={"category": "complaint", "description": "noise", "building_id": "B03", "grid_id": "G3"},
        headers=resident,
    )  # fmt: skip
    assert placed.status_code == 201 and (placed.json()["building_id"], placed.json()["grid_id"]) == ("B01", "G1")


async def test_reports_by_hand_are_bounded_and_rate_limited(command):
    from common.limits import RateLimiter

    unknown_field = await command.client.post(
        "/tickets", json={"category": "complaint", "description": "x", "sneaky": "13911112222"}, headers=command.staff
    )
    assert unknown_field.status_code == 422 and "13911112222" not in unknown_field.text  # never echoes the input
    too_long = await command.client.post(
        "/tickets", json={"category": "complaint", "description": "x", "resident_id": "R" * 41}, headers=command.staff
    )
    assert too_long.status_code == 422
    rule = {"kind": "k", "department": "command", "owner_by": "department", "priority": "normal", "title": "t",
            "also_share": {f"d{n}": "x" for n in range(11)}}  # fmt: skip
    assert (await command.client.put("/rules/category:k", json=rule, headers=command.admin)).status_code == 422

    command.app.state.report_rate = RateLimiter("reports", per_minute=1, burst=2)
    resident = command.as_("resident", "R-rate")
    answers = [
        await command.client.post("/tickets", json={"category": "complaint", "description": "x"}, headers=resident)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 429] and int(answers[-1].headers["retry-after"]) > 0
