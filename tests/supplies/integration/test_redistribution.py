"""Fair distribution (分配不均): surplus days of cover move to depots short of them."""

from __future__ import annotations


async def test_a_transfer_is_suggested_once_and_carrying_it_out_closes_it(supplies):
    gel = await supplies.item("GEL", category="disinfection", lead_time_days=3)
    station = await supplies.depot("Station", kind="community_station")
    b1 = await supplies.depot("B1")
    b2 = await supplies.depot("B2")
    await supplies.receive(gel, station, 400)
    await supplies.receive(gel, b1, 100)
    await supplies.receive(gel, b2, 100)
    # A week of use: the station 5 a day, B1 10 a day, B2 1 a day.
    for _ in range(7):
        await supplies.issue(gel, station, 5)
        await supplies.issue(gel, b1, 10)
        await supplies.issue(gel, b2, 1)
        supplies.clock.advance(days=1)
    await supplies.issue(gel, b1, 25)  # B1: 5 left at ~13.6 a day, well under 3 days

    answer = await supplies.post("/stock/rebalance", {}, 200)
    assert answer["new"] == 1
    [suggestion] = answer["suggestions"]
    # B2 (93 units at 1 a day) can fill the need alone and is the smallest donor that can:
    # one trip, and the station keeps its larger reserve.
    assert (suggestion["from_depot_id"], suggestion["to_depot_id"]) == (b2, b1)
    # B1 is brought to 1.5 lead times of its own use: 13.57 x 3 x 1.5 = 61 units, less the 5 it has.
    assert suggestion["quantity"] == 56
    events = await supplies.outbox("TransferSuggested")
    assert len(events) == 1 and events[0]["data"]["quantity"] == 56 and events[0]["data"]["to_depot_id"] == b1

    again = await supplies.post("/stock/rebalance", {}, 200)
    assert again["new"] == 0 and len(await supplies.outbox("TransferSuggested")) == 1

    await supplies.post(
        "/stock/transfers",
        {
            "item_id": gel,
            "from_depot_id": b2,
            "to_depot_id": b1,
            "quantity": 56,
            "suggestion_id": suggestion["suggestion_id"],
        },
    )
    assert await supplies.get("/stock/transfers/suggestions") == []
    done = await supplies.get("/stock/transfers/suggestions", status="done")
    assert done[0]["transfer_id"].startswith("T-")
    assert (await supplies.position(gel, b1))["state"] == "ok"


async def test_no_suggestion_when_every_depot_is_covered(supplies):
    gel = await supplies.item("GEL", category="disinfection", threshold=10)
    a = await supplies.depot("A")
    b = await supplies.depot("B")
    await supplies.receive(gel, a, 50)
    await supplies.receive(gel, b, 50)
    assert (await supplies.post("/stock/rebalance", {}, 200))["suggestions"] == []
