"""A building lead's view: their own buildings only, and no neighbour's health facts."""

from __future__ import annotations


async def test_a_building_lead_sees_who_needs_attention_in_their_building_without_health_facts(checkin):
    fever = await checkin.register("发烧", "501", tags=["chronic"])
    missed_tagged = await checkin.register("孕妇", "502", tags=["pregnant"])
    missed = await checkin.register("普通", "503")
    await checkin.register("别的楼", "504", building="B02")
    await checkin.client.post(
        "/checkins", json={"resident_id": fever, "temperature_c": 38.5, "symptoms": ["cough"]}, headers=checkin.admin
    )
    checkin.clock.advance(hours=2)
    await checkin.client.post("/sweeps", json={"date": str(checkin.service.today())}, headers=checkin.admin)

    lead = checkin.as_("building_lead", "lead-1", building_ids=["B01"])
    response = await checkin.client.get("/followups", params={"building_id": "B01"}, headers=lead)
    assert response.status_code == 200, response.text
    items = response.json()["followups"]
    assert [i["resident_id"] for i in items] == [fever, missed_tagged, missed]  # tags do not order a lead's list
    assert [i["needs_attention"] for i in items] == [True, False, False]
    assert items[0]["reasons"] == ["needs attention"] and items[1]["reasons"] == ["missed check-in (1 day)"]
    text = response.text
    for health_fact in ("38.5", "cough", "chronic", "pregnant", "temperature", "symptoms", "tags", "anomaly", "fever"):
        assert health_fact not in text, health_fact
    assert items[0]["address"] == "B01-1-501" and items[0]["phone"]
    # Without building_id: all the lead's buildings.
    assert (await checkin.client.get("/followups", headers=lead)).json()["followups"] == items


async def test_another_building_is_answered_as_an_unknown_one(checkin):
    await checkin.register("别的楼", "504", building="B02")
    lead = checkin.as_("building_lead", "lead-1", building_ids=["B01"])
    for path in ("/followups", "/stats/completion"):
        theirs = await checkin.client.get(path, params={"building_id": "B02"}, headers=lead)
        unknown = await checkin.client.get(path, params={"building_id": "B99"}, headers=lead)
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json()["detail"].replace("B02", "B?") == unknown.json()["detail"].replace("B99", "B?")


async def test_a_building_lead_reads_completion_of_their_buildings_by_building(checkin):
    a = await checkin.register("甲", "601", building="B01")
    await checkin.register("乙", "602", building="B01")
    await checkin.register("丙", "603", building="B02")
    await checkin.register("丁", "604", building="B03", grid="G2")
    await checkin.client.post("/checkins", json={"resident_id": a, "temperature_c": 36.5}, headers=checkin.admin)
    checkin.clock.advance(days=1)
    await checkin.client.post("/checkins", json={"resident_id": a, "temperature_c": 36.5}, headers=checkin.admin)

    lead = checkin.as_("building_lead", "lead-1", building_ids=["B01", "B03"])
    answer = (await checkin.client.get("/stats/completion", params={"by": "building"}, headers=lead)).json()
    assert [(r["building_id"], r["expected"], r["checked_in"]) for r in answer["rows"]] == [
        ("B01", 2, 1),
        ("B03", 1, 0),
    ]
    one = (await checkin.client.get("/stats/completion", params={"building_id": "B03"}, headers=lead)).json()
    assert [r["building_id"] for r in one["rows"]] == ["B03"]
    by_grid = await checkin.client.get("/stats/completion", params={"by": "grid"}, headers=lead)
    assert by_grid.status_code == 403
    # Residents still read neither.
    resident = checkin.as_("resident", a)
    assert (await checkin.client.get("/stats/completion", headers=resident)).status_code == 403
    assert (await checkin.client.get("/followups", headers=resident)).status_code == 403
