"""Resident ids cannot be derived from a name and address, "not yours" answers exactly as
"not found" does, and a building lead records samples only for their own residents."""

from __future__ import annotations

import uuid
from datetime import timedelta

from checkin.models import Resident


async def test_a_new_resident_id_is_not_derived_from_name_and_address(checkin):
    first = await checkin.register("张三", "101")
    # the id the register used to derive from community, building, unit, room and name
    legacy = "R-" + uuid.uuid5(uuid.UUID("6f1c3b2e-8a51-4c7e-9d0f-1e2a3b4c5d6e"), "C1|B01|1|101|张三").hex[:16]
    assert first != legacy and first.startswith("R-") and len(first) == 18
    again = await checkin.client.post(
        "/residents",
        json={
            "name": "张三",
            "phone": "13800000000",
            "grid_id": "G1",
            "building_id": "B01",
            "unit": "1",
            "room": "101",
        },
        headers=checkin.admin,
    )
    assert again.status_code == 409 and again.json()["resident_id"] == first  # one person, one id


async def test_an_existing_id_keeps_working_and_a_reimport_does_not_duplicate(checkin, clock):
    legacy = "R-" + uuid.uuid5(uuid.UUID("6f1c3b2e-8a51-4c7e-9d0f-1e2a3b4c5d6e"), "C1|B03|2|401|王芳").hex[:16]
    async with checkin.app.state.runtime.work() as uow:
        uow.session.add(
            Resident(
                resident_id=legacy,
                name="王芳",
                phone="13800000000",
                community_id="C1",
                grid_id="G1",
                building_id="B03",
                unit="2",
                room="401",
                tags=[],
                registered_at=clock.now() - timedelta(days=3),
            )
        )
    ok = await checkin.client.post(
        "/checkins", json={"resident_id": legacy, "temperature_c": 36.5}, headers=checkin.admin
    )
    assert ok.status_code == 201, ok.text
    upload = {"file": ("r.csv", "姓名,楼栋-单元-房号,电话,网格\n王芳,B03-2-401,13800000000,G1\n".encode(), "text/csv")}
    report = (await checkin.client.post("/residents/import", files=upload, headers=checkin.admin)).json()
    assert (report["imported"], report["unchanged"]) == (0, 1)


async def test_not_yours_and_not_found_answer_alike_on_every_route_that_takes_a_resident(checkin):
    outside = await checkin.register("李四", "202", building="B02", grid="G2")
    nobody = "R-ffffffffffffffff"
    lead = checkin.as_("building_lead", "L-1", building_ids=["B01"])
    worker = checkin.as_("grid_worker", "W-1", grid_ids=["G1"])
    neighbour = checkin.as_("resident", "R-1111111111111111")
    for who in (lead, worker, neighbour):
        for resident_id in (outside, nobody):
            answers = [
                await checkin.client.get(f"/residents/{resident_id}", headers=who),
                await checkin.client.post(
                    "/checkins", json={"resident_id": resident_id, "temperature_c": 36.5}, headers=who
                ),
            ]
            if who is not neighbour:
                answers.append(
                    await checkin.client.post(
                        f"/residents/{resident_id}/absences",
                        json={"from_date": "2026-11-21", "to_date": "2026-11-22", "reason": "away"},
                        headers=who,
                    )
                )
            for answer in answers:
                assert answer.status_code == 404, answer.text
                assert answer.json()["detail"] == f"no resident {resident_id!r} among those you may act for"
                assert "B02" not in answer.text and "G2" not in answer.text


async def test_a_building_lead_records_samples_only_for_their_buildings_residents(checkin):
    mine = await checkin.register("张三", "101", building="B01")
    theirs = await checkin.register("李四", "102", building="B03")
    opened = await checkin.client.post(
        "/sampling/rounds",
        json={"name": "第1轮", "building_ids": ["B01", "B03"], "deadline": "2026-11-22T00:00:00+08:00"},
        headers=checkin.as_("command", "cmd-1"),
    )
    round_id = opened.json()["round_id"]
    lead = checkin.as_("building_lead", "L-1", building_ids=["B01"])
    refused = await checkin.client.post(
        f"/sampling/rounds/{round_id}/samples", json={"resident_ids": [mine, theirs]}, headers=lead
    )
    assert (
        refused.status_code == 404 and theirs in refused.text and mine not in refused.text and "B03" not in refused.text
    )
    ok = await checkin.client.post(f"/sampling/rounds/{round_id}/samples", json={"resident_ids": [mine]}, headers=lead)
    assert ok.status_code == 200 and ok.json() == {"recorded": 1, "already": 0}
    status = (await checkin.client.get(f"/sampling/rounds/{round_id}", headers=checkin.admin)).json()
    assert "B03" in str(status)  # the round still covers B03, with nothing recorded there by the lead
