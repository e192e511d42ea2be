"""The ledger through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest


async def test_receipts_issues_transfers_and_adjustments_are_ledger_lines_and_on_hand_is_their_sum(supplies):
    item = await supplies.item("GLOVE-L")
    station = await supplies.depot("Community station", kind="community_station")
    b3 = await supplies.depot("Building 3 point", building_id="B03")

    received = await supplies.receive(item, station, 100, source="government_allocation", batch="G-1")
    assert received["movement"]["kind"] == "receipt" and received["movement"]["by"] == "officer-1"
    assert received["stock"]["on_hand"] == 100
    await supplies.receive(item, station, 20, source="donation")
    issued = await supplies.issue(item, station, 30)
    assert issued["stock"]["on_hand"] == 90
    moved = await supplies.post(
        "/stock/transfers", {"item_id": item, "from_depot_id": station, "to_depot_id": b3, "quantity": 25}
    )
    assert moved["from"]["stock"]["on_hand"] == 65 and moved["to"]["stock"]["on_hand"] == 25
    assert {m["kind"] for m in moved["movements"]} == {"transfer_out", "transfer_in"}
    adjusted = await supplies.post(
        "/stock/adjustments", {"item_id": item, "depot_id": b3, "quantity": -3, "reason": "damage", "note": "torn"}
    )
    assert adjusted["stock"]["on_hand"] == 22

    ledger = await supplies.get("/stock/ledger", item_id=item)
    assert [m["kind"] for m in reversed(ledger)] == [
        "receipt", "receipt", "issue", "transfer_out", "transfer_in", "adjustment",
    ]  # fmt: skip
    assert all(m["by"] == "officer-1" for m in ledger)
    assert sum(m["quantity"] for m in ledger if m["depot_id"] == station) == 65
    assert sum(m["quantity"] for m in ledger if m["depot_id"] == b3) == 22
    audit = await supplies.get("/stock/audit")
    assert audit["consistent"] and audit["movements"] == 6
    depot_view = await supplies.get("/stock", depot_id=b3)
    assert [(s["sku"], s["on_hand"]) for s in depot_view["stock"]] == [("GLOVE-L", 22)]


async def test_issues_take_the_first_expiring_batch_and_never_expired_stock(supplies):
    kit = await supplies.item("AG-KIT", category="testing", tracks_expiry=True)
    depot = await supplies.depot("Station")
    today = supplies.service.today()
    await supplies.receive(kit, depot, 10, batch="LATE", expires_on=str(today + timedelta(days=90)))
    await supplies.receive(kit, depot, 5, batch="SOON", expires_on=str(today + timedelta(days=2)))
    batches = {b["batch_id"]: b["batch"] for b in await supplies.get("/stock/batches", item_id=kit)}
    issued = await supplies.issue(kit, depot, 7)
    assert [(batches[m["batch_id"]], m["quantity"]) for m in issued["movements"]] == [("SOON", -5), ("LATE", -2)]

    await supplies.receive(kit, depot, 4, batch="EDGE", expires_on=str(today + timedelta(days=1)))
    supplies.clock.advance(days=2)  # EDGE has expired
    position = await supplies.position(kit, depot)
    assert (position["on_hand"], position["expired"], position["available"]) == (12, 4, 8)
    refused = await supplies.issue(kit, depot, 9, expect=409)
    assert "only 8 available" in refused["detail"] and "8 unexpired" in refused["detail"]
    written_off = await supplies.post(
        "/stock/adjustments", {"item_id": kit, "depot_id": depot, "quantity": -4, "reason": "expiry", "batch": "EDGE"}
    )
    assert written_off["stock"]["expired"] == 0 and written_off["stock"]["on_hand"] == 8


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/stock/issues", {"quantity": 0}, 422, "more than 0"),
        ("/stock/issues", {"quantity": -5}, 422, "more than 0"),
        ("/stock/receipts", {"quantity": -1}, 422, "more than 0"),
        ("/stock/issues", {"quantity": 11}, 409, "only 10 available"),
        ("/stock/issues", {"item_id": "I-nope"}, 404, "no item 'I-nope'"),
        ("/stock/receipts", {"depot_id": "D-nope"}, 404, "no depot 'D-nope'"),
        ("/stock/transfers", {"to_depot_id": "SAME"}, 422, "another depot"),
        ("/stock/transfers", {"quantity": 50}, 409, "only 10 available"),
        ("/stock/adjustments", {"quantity": 2, "reason": "loss"}, 422, "negative"),
        ("/stock/adjustments", {"quantity": 0, "reason": "count_correction"}, 422, "non-zero"),
        ("/stock/receipts", {"source": "stolen"}, 422, "source"),
    ],
)
async def test_bad_input_gets_a_4xx_that_says_why_and_changes_nothing(supplies, path, body, status, message):
    item = await supplies.item("MASK")
    depot = await supplies.depot("Station")
    other = await supplies.depot("Other")
    await supplies.receive(item, depot, 10)
    before = await supplies.outbox()
    if path == "/stock/transfers":  # unknown fields are refused: each endpoint gets its own
        base = {"item_id": item, "quantity": 1, "from_depot_id": depot, "to_depot_id": other}
    else:
        base = {"item_id": item, "depot_id": depot, "quantity": 1}
    payload = {**base, **body}
    if payload.get("to_depot_id") == "SAME":
        payload["to_depot_id"] = depot
    response = await supplies.client.post(path, json=payload, headers=supplies.officer)
    assert response.status_code == status, response.text
    assert message in str(response.json()["detail"])
    assert (await supplies.position(item, depot))["on_hand"] == 10
    assert len(await supplies.get("/stock/ledger")) == 1
    assert await supplies.outbox() == before
    assert (await supplies.get("/stock/audit"))["consistent"]


async def test_catalog_rules(supplies):
    await supplies.item("MASK")
    duplicate = await supplies.client.post(
        "/items",
        json={"sku": "mask", "name": "again", "unit": "box", "category": "protective"},
        headers=supplies.officer,
    )
    assert duplicate.status_code == 409 and "MASK" in duplicate.json()["detail"]
    unknown = await supplies.client.post(
        "/items", json={"sku": "X", "name": "x", "unit": "box", "category": "toys"}, headers=supplies.officer
    )
    assert unknown.status_code == 422
    far = await supplies.client.post("/depots", json={"name": "Moon", "lat": 95, "lon": 0}, headers=supplies.officer)
    assert far.status_code == 422 and "lat" in far.json()["detail"]
    kit = await supplies.item("KIT", tracks_expiry=True)
    depot = await supplies.depot("Station")
    undated = await supplies.client.post(
        "/stock/receipts", json={"item_id": kit, "depot_id": depot, "quantity": 5}, headers=supplies.officer
    )
    assert undated.status_code == 422 and "expires_on" in undated.json()["detail"]
    items = await supplies.get("/items")
    assert [i["sku"] for i in items] == ["KIT", "MASK"]


async def test_who_may_do_what(supplies):
    resident = supplies.as_("resident", "R-1")
    assert (await supplies.client.get("/stock", headers=resident)).status_code == 403
    assert (await supplies.client.get("/stock")).status_code == 401
    dispatcher = supplies.as_("dispatcher", "disp-1")
    assert (await supplies.client.get("/stock/alerts", headers=dispatcher)).status_code == 200
    create = await supplies.client.post(
        "/items", json={"sku": "X", "name": "x", "unit": "box", "category": "food"}, headers=dispatcher
    )
    assert create.status_code == 403
