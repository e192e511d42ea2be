"""Households: everyone at one building-unit-room, unless the register says otherwise (a
`户` column in the import, `household` on a registration): a family across two flats is
one household, two households sharing a flat are two. The household page, the building's
list (the QR sheet's source) and the events all group by it."""

from __future__ import annotations


def register_csv(*rows: str) -> dict:
    body = "姓名,楼栋-单元-房号,电话,网格,户\n" + "".join(f"{row}\n" for row in rows)
    return {"file": ("居民.csv", body.encode(), "text/csv")}


async def test_the_register_says_who_lives_together(checkin):
    answer = await checkin.client.post(
        "/residents/import",
        files=register_csv(
            "王父,B07-1-101,13800000001,G1,",  # the room's household
            "王子,B07-1-102,13800000002,G1,1-101",  # joins 101's household
            "租客甲,B07-1-103,13800000003,G1,103甲",  # two households sharing 103
            "租客乙,B07-1-103,13800000004,G1,103乙",
            "坏的,B07-1-104,13800000005,G1,1.04/x",
        ),
        headers=checkin.admin,
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["imported"] == 4 and [r["row"] for r in report["rejected"]] == [6]
    assert "household" in report["rejected"][0]["reason"]

    registered = {e["data"]["name"]: e["data"] for e in await checkin.outbox("ResidentRegistered")}
    assert registered["王父"]["household_id"] == registered["王子"]["household_id"] == "H.B07.1.101"
    assert registered["租客甲"]["household_id"] == "H.B07.103甲" != registered["租客乙"]["household_id"]

    family = (await checkin.client.get("/households/H.B07.1.101", headers=checkin.admin)).json()
    assert sorted(m["name"] for m in family["members"]) == ["王子", "王父"]
    # A resident's id resolves to the household the register gave them.
    son = registered["王子"]["resident_id"]
    assert (await checkin.client.get(f"/households/{son}", headers=checkin.admin)).json()[
        "household_id"
    ] == "H.B07.1.101"
    tenant = (await checkin.client.get("/households/H.B07.103甲", headers=checkin.admin)).json()
    assert [m["name"] for m in tenant["members"]] == ["租客甲"]

    # The building's list (what the lead's page and the QR sheet read) groups the same way.
    lead = checkin.as_("building_lead", "lead-7", building_ids=["B07"])
    building = (await checkin.client.get("/households", params={"building_id": "B07"}, headers=lead)).json()
    groups = {h["household_id"]: sorted(m["name"] for m in h["members"]) for h in building["households"]}
    assert groups == {"H.B07.1.101": ["王子", "王父"], "H.B07.103甲": ["租客甲"], "H.B07.103乙": ["租客乙"]}

    # A household's own session sees its members, and not the neighbours sharing the flat.
    own = checkin.as_("resident", "H.B07.103甲", household_id="H.B07.103甲")
    assert (await checkin.client.get("/households/H.B07.103甲", headers=own)).status_code == 200
    assert (await checkin.client.get("/households/H.B07.103乙", headers=own)).status_code == 403


async def test_one_registration_names_its_household(checkin):
    body = {"name": "李奶奶", "phone": "13800000011", "grid_id": "G1", "building_id": "B08", "unit": "2", "room": "202"}
    plain = await checkin.client.post("/residents", json=body, headers=checkin.admin)
    assert plain.json()["household_id"] == "H.B08.2.202"
    joined = await checkin.client.post(
        "/residents", json={**body, "name": "李孙", "room": "203", "household": "2-202"}, headers=checkin.admin
    )
    assert joined.status_code == 201 and joined.json()["household_id"] == "H.B08.2.202"
    bad = await checkin.client.post("/residents", json={**body, "name": "x", "household": "a b"}, headers=checkin.admin)
    assert bad.status_code == 422 and "household" in bad.json()["detail"]
    assert (await checkin.client.get("/households/H.B08", headers=checkin.admin)).status_code == 422
