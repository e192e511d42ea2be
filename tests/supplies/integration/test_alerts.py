"""Thresholds, days of cover, expiry warnings and the alerts list."""

from __future__ import annotations

from datetime import timedelta


async def test_stock_low_once_per_crossing_stock_out_at_zero_and_a_clearing_event(supplies):
    item = await supplies.item("MASK", threshold=20)
    depot = await supplies.depot("Station")
    await supplies.receive(item, depot, 50)
    await supplies.issue(item, depot, 25)  # 25: still above 20
    assert await supplies.outbox("StockLow") == []
    await supplies.issue(item, depot, 10)  # 15: crosses
    await supplies.issue(item, depot, 5)  # 10: still low, quiet
    await supplies.issue(item, depot, 1)
    low = await supplies.outbox("StockLow")
    assert len(low) == 1
    data = low[0]["data"]
    assert (data["item_id"], data["depot_id"], data["on_hand"], data["threshold"], data["reason"]) == (
        item,
        depot,
        15,
        20,
        "threshold",
    )
    assert low[0]["subject"] == f"{item}:{depot}"
    await supplies.issue(item, depot, 9)  # 0
    await supplies.issue(item, depot, 1, expect=409)
    out = await supplies.outbox("StockOut")
    assert len(out) == 1 and out[0]["subject"] == f"{item}:{depot}"
    await supplies.receive(item, depot, 100)
    restored = await supplies.outbox("StockRestored")
    assert len(restored) == 1 and restored[0]["data"]["on_hand"] == 100
    await supplies.issue(item, depot, 85)  # 15: a new crossing, a new StockLow
    assert len(await supplies.outbox("StockLow")) == 2


async def test_days_of_cover_sees_a_shortage_before_the_minimum_does(supplies):
    item = await supplies.item("RICE-5KG", category="food", threshold=5, lead_time_days=3)
    depot = await supplies.depot("Station")
    await supplies.receive(item, depot, 200)
    # 20 a day for a week: 140 issued, 60 left = 3 days of 20 a day (the 7-day average)
    for _ in range(7):
        await supplies.issue(item, depot, 20)
        supplies.clock.advance(days=1)
    position = await supplies.position(item, depot)
    assert position["daily_consumption"] == 20 and position["days_of_cover"] == 3.0
    assert position["state"] == "ok"
    await supplies.issue(item, depot, 20)  # 40 left, 2.x days against a 3-day lead time
    low = await supplies.outbox("StockLow")
    assert len(low) == 1
    data = low[0]["data"]
    assert data["reason"] == "days_of_cover" and data["days_of_cover"] < 3 and data["lead_time_days"] == 3
    alerts = await supplies.get("/stock/alerts")
    assert [(a["item_id"], a["reason"]) for a in alerts["alerts"]] == [(item, "days_of_cover")]
    # A week with no issues: consumption leaves the window, the job clears the alert.
    supplies.clock.advance(days=8)
    assert await supplies.service.reassess_all() == 1
    assert len(await supplies.outbox("StockRestored")) == 1
    assert (await supplies.get("/stock/alerts"))["count"] == 0


async def test_the_alerts_list_is_most_urgent_first(supplies):
    mask = await supplies.item("MASK", threshold=50)
    gel = await supplies.item("GEL", category="disinfection", threshold=10)
    kit = await supplies.item("KIT", category="testing", lead_time_days=5)
    fine = await supplies.item("SOAP", category="disinfection", threshold=1)
    a = await supplies.depot("A")
    b = await supplies.depot("B")
    await supplies.receive(mask, a, 40)  # low: 40 of 50
    await supplies.receive(gel, b, 5)
    await supplies.issue(gel, b, 5)  # out
    await supplies.receive(kit, a, 30)
    await supplies.issue(kit, a, 14)  # 16 left, 2 a day: 8 days of cover > 5: ok
    await supplies.issue(kit, a, 14)  # 2 left at 4 a day: 0.5 days of cover
    await supplies.receive(fine, a, 10)
    alerts = (await supplies.get("/stock/alerts"))["alerts"]
    assert [(x["sku"], x["state"]) for x in alerts] == [("GEL", "out"), ("KIT", "low"), ("MASK", "low")]
    only_b = (await supplies.get("/stock/alerts", depot_id=b))["alerts"]
    assert [x["sku"] for x in only_b] == ["GEL"]


async def test_reservations_count_against_the_line(supplies):
    item = await supplies.item("MASK", threshold=10)
    depot = await supplies.depot("Station")
    await supplies.receive(item, depot, 15)
    held = await supplies.post(
        "/reservations", {"request_id": "REQ-1", "lines": [{"item_id": item, "quantity": 8}]}, 200
    )
    assert held["status"] == "held"
    position = await supplies.position(item, depot)
    assert (position["on_hand"], position["reserved"], position["available"], position["state"]) == (15, 8, 7, "low")
    assert len(await supplies.outbox("StockLow")) == 1


async def test_stock_expiring_once_per_batch_before_it_expires(supplies):
    kit = await supplies.item("KIT", category="testing", tracks_expiry=True)
    depot = await supplies.depot("Station")
    today = supplies.service.today()
    await supplies.receive(kit, depot, 10, batch="B-SOON", expires_on=str(today + timedelta(days=10)))
    await supplies.receive(kit, depot, 10, batch="B-LATE", expires_on=str(today + timedelta(days=60)))
    assert await supplies.service.warn_expiring() == 0
    supplies.clock.advance(days=3)  # 7 days before B-SOON expires
    assert await supplies.service.warn_expiring() == 1
    assert await supplies.service.warn_expiring() == 0  # once, however often the job runs
    expiring = await supplies.outbox("StockExpiring")
    assert [(e["data"]["batch"], e["data"]["quantity"]) for e in expiring] == [("B-SOON", 10)]
    assert [b["batch"] for b in await supplies.get("/stock/expiring")] == ["B-SOON"]
    supplies.clock.advance(days=8)  # B-SOON expired: not available, the job re-assesses
    position = await supplies.position(kit, depot)
    assert (position["expired"], position["available"]) == (10, 10)
