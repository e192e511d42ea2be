"""A decision of the daily meeting (每日例会) becomes a ticket in one call: command staff name
its owner and its deadline; nobody else may."""

from __future__ import annotations

from datetime import timedelta


async def test_a_meeting_decision_opens_a_ticket_with_the_owner_and_deadline_staff_named(command):
    deadline = command.clock.now() + timedelta(hours=30)
    response = await command.client.post(
        "/tickets",
        json={"category": "meeting_decision", "description": "B05 上门采样", "building_id": "B05",
              "owner": "gw-G2", "resolve_by": deadline.isoformat()},
        headers=command.staff,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert (ticket["kind"], ticket["owner"], ticket["department"], ticket["stage"]) == (
        "meeting_decision", "gw-G2", "grid", "discovered",
    )  # fmt: skip
    assert ticket["resolve_by"].startswith(deadline.isoformat()[:19].replace("+00:00", ""))
    assert ticket["respond_by"] <= ticket["resolve_by"]
    (opened,) = await command.outbox("TicketOpened")
    assert opened["data"]["owner"] == "gw-G2"


async def test_only_command_staff_name_an_owner_or_a_deadline_and_only_in_the_future(command):
    body = {"category": "complaint", "description": "rubbish", "owner": "gw-G1"}
    grid_worker = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])
    assert (await command.client.post("/tickets", json=body, headers=grid_worker)).status_code == 403
    past = {
        "category": "meeting_decision",
        "description": "x",
        "resolve_by": (command.clock.now() - timedelta(minutes=1)).isoformat(),
    }
    assert (await command.client.post("/tickets", json=past, headers=command.staff)).status_code == 422
    nobody = {"category": "meeting_decision", "description": "x", "owner": "nobody"}
    refused = await command.client.post("/tickets", json=nobody, headers=command.staff)
    assert refused.status_code == 422 and "directory" in refused.json()["detail"]
    assert await command.tickets() == []


async def test_a_note_joins_the_history_without_changing_the_ticket_or_publishing(command):
    opened = await command.client.post(
        "/tickets", json={"category": "complaint", "description": "楼道灯坏了"}, headers=command.staff
    )
    tid = opened.json()["ticket_id"]
    events = len(await command.outbox())
    noted = await command.client.post(f"/tickets/{tid}/notes", json={"note": "物业说明天修"}, headers=command.staff)
    assert noted.status_code == 200, noted.text
    assert (noted.json()["stage"], noted.json()["owner"]) == ("discovered", "cmd-duty")
    history = (await command.client.get(f"/tickets/{tid}", headers=command.staff)).json()["history"]
    assert [(h["action"], h["note"], h["by"]) for h in history][-1] == ("note", "物业说明天修", "cmd-duty")
    assert len(await command.outbox()) == events  # nothing published
    volunteer = command.as_("volunteer", "V1")
    refused = await command.client.post(f"/tickets/{tid}/notes", json={"note": "x"}, headers=volunteer)
    assert refused.status_code == 404  # a ticket one may not see is not there
    empty = await command.client.post(f"/tickets/{tid}/notes", json={"note": ""}, headers=command.staff)
    assert empty.status_code == 422
