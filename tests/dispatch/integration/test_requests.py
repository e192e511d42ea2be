"""The dispatch app in-process on SQLite and PostgreSQL: HTTP as users call it, events fed
to its consumer as Kafka delivers them, the outbox inspected for what it publishes."""

from __future__ import annotations

from datetime import timedelta

from common.events.supplies import ReservationLine, ReservationRejected, Shortage, StockReserved, StockRestored
from common.events.timebank import HoursRedeemed


async def test_a_request_is_prioritised_and_assigned_at_once(dispatch):
    await dispatch.resident("R1", tags=["elderly", "living_alone"])
    volunteer = await dispatch.volunteer("Wang")
    request = await dispatch.raise_("R1", "groceries")
    assert request["status"] == "assigned" and request["volunteer_id"] == volunteer
    assert request["priority"] == "high"
    raised = (await dispatch.outbox("RequestRaised"))[0]
    assert raised["subject"] == request["request_id"]
    assert raised["data"]["priority"] == "high" and raised["data"]["due_by"].startswith("2026-11-23T07:00")
    assigned = (await dispatch.outbox("RequestAssigned"))[0]["data"]
    assert assigned == {**assigned, "request_id": request["request_id"], "volunteer_id": volunteer}


async def test_bad_input_is_refused_and_changes_nothing(dispatch):
    await dispatch.resident("R1")
    bad = await dispatch.client.post(
        "/requests", json={"resident_id": "R1", "category": "food"}, headers=dispatch.as_("resident", "R1")
    )
    assert bad.status_code == 422 and "unknown category 'food'" in bad.json()["detail"]
    unknown = await dispatch.client.post(
        "/requests", json={"resident_id": "R9", "category": "groceries"}, headers=dispatch.dispatcher
    )
    assert unknown.status_code == 404 and "unknown resident 'R9'" in unknown.json()["detail"]
    other = await dispatch.client.post(
        "/requests", json={"resident_id": "R1", "category": "groceries"}, headers=dispatch.as_("resident", "R2")
    )
    assert other.status_code == 403
    window = {"start": "2026-11-23T12:00:00+08:00", "end": "2026-11-23T10:00:00+08:00"}
    backwards = await dispatch.client.post(
        "/requests", json={"resident_id": "R1", "category": "groceries", "window": window}, headers=dispatch.dispatcher
    )
    assert backwards.status_code == 422 and "before it starts" in backwards.json()["detail"]
    volunteer = await dispatch.client.post(
        "/volunteers",
        json={"name": "X", "group": "cooks", "lat": 31.2, "lon": 121.4, "capacity": 3, "phone": "139"},
        headers=dispatch.dispatcher,
    )
    assert volunteer.status_code == 422 and "unknown group 'cooks'" in volunteer.json()["detail"]
    assert (
        await dispatch.client.post(
            "/volunteers",
            json={"name": "X", "group": "errands", "lat": 31.2, "lon": 121.4, "capacity": 3, "phone": "139"},
            headers=dispatch.as_("resident", "R1"),
        )
    ).status_code == 403
    assert await dispatch.outbox() == []
    assert (await dispatch.client.get("/requests", headers=dispatch.dispatcher)).json() == []


async def test_psychological_requests_go_to_a_counsellor(dispatch):
    await dispatch.resident("R1", tags=["mental_health"])
    await dispatch.volunteer("Errand runner next door", lat=31.2320, lon=121.4750)
    counsellor = await dispatch.volunteer("Dr Li", group="counsellor", lat=31.30, lon=121.50)
    request = await dispatch.raise_("R1", "psychological")
    assert request["volunteer_id"] == counsellor and request["priority"] == "urgent"


async def test_a_request_waits_for_a_volunteer_and_is_taken_when_one_registers(dispatch):
    await dispatch.resident("R1")
    request = await dispatch.raise_("R1", "tech_help")
    assert request["status"] == "pending" and request["volunteer_id"] is None
    tech = await dispatch.volunteer("Zhao", group="tech")
    assert (await dispatch.get(request["request_id"]))["volunteer_id"] == tech


async def test_request_reserved_assigned_planned_fulfilled(dispatch):
    """End to end inside dispatch: the saga with supplies by events, then the run."""
    await dispatch.resident("R1", tags=["chronic"])
    wang = await dispatch.volunteer("Wang")
    request = await dispatch.raise_("R1", "medicine", items=[{"item_id": "insulin", "quantity": 2}])
    rid = request["request_id"]
    assert request["status"] == "awaiting_stock" and request["volunteer_id"] is None
    assert (await dispatch.outbox("RequestRaised"))[0]["data"]["items"] == [{"item_id": "insulin", "quantity": 2.0}]
    assert await dispatch.outbox("RequestAssigned") == []

    await dispatch.deliver(
        StockReserved(request_id=rid, lines=[ReservationLine(item_id="insulin", quantity=2, depot_id="D1")])
    )
    assert (await dispatch.get(rid))["status"] == "assigned"

    plan = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()
    assert [s["request_id"] for s in plan["runs"][0]["stops"]] == [rid]
    run_id = plan["runs"][0]["run_id"]
    planned = (await dispatch.outbox("DeliveryPlanned"))[0]["data"]
    assert (
        planned["run_id"] == run_id
        and planned["stops"] == [rid]
        and planned["distance_m"] > 0
        and len(planned["etas"]) == 1
    )
    sheet = await dispatch.client.get(
        f"/runs/{run_id}", headers={**dispatch.as_("volunteer", wang), "Accept": "text/plain"}
    )
    assert sheet.status_code == 200 and "insulin x2" in sheet.text and "Resident R1" in sheet.text
    assert (
        await dispatch.client.get(f"/runs/{run_id}", headers=dispatch.as_("volunteer", "V-other"))
    ).status_code == 403

    intruder = await dispatch.client.post(
        f"/requests/{rid}/fulfil",
        json={"volunteer_id": "V-other", "service_minutes": 10},
        headers=dispatch.as_("volunteer", "V-other"),
    )
    assert intruder.status_code == 403 and "assigned to" in intruder.json()["detail"]
    done = await dispatch.client.post(
        f"/requests/{rid}/fulfil",
        json={"volunteer_id": wang, "service_minutes": 25, "note": "left with neighbour"},
        headers=dispatch.as_("volunteer", wang),
    )
    assert done.status_code == 200 and done.json()["status"] == "fulfilled"
    fulfilled = (await dispatch.outbox("RequestFulfilled"))[0]["data"]
    assert fulfilled["volunteer_id"] == wang and fulfilled["service_minutes"] == 25
    again = await dispatch.client.post(
        f"/requests/{rid}/fulfil",
        json={"volunteer_id": wang, "service_minutes": 25},
        headers=dispatch.as_("volunteer", wang),
    )
    assert again.status_code == 422 and len(await dispatch.outbox("RequestFulfilled")) == 1


async def test_rejected_reservation_waits_and_resumes_when_stock_is_back(dispatch):
    await dispatch.resident("R1")
    await dispatch.volunteer("Wang")
    rid = (await dispatch.raise_("R1", "groceries", items=[{"item_id": "rice", "quantity": 5}]))["request_id"]
    await dispatch.deliver(
        ReservationRejected(request_id=rid, shortages=[Shortage(item_id="rice", requested=5, available=1)])
    )
    waiting = await dispatch.get(rid)
    assert waiting["status"] == "waiting_for_stock" and waiting["shortages"][0]["item_id"] == "rice"
    assert "waiting for stock: rice (1 of 5)" in waiting["history"][-1]["note"]

    await dispatch.deliver(StockRestored(item_id="flour", depot_id="D1", on_hand=50))
    assert (await dispatch.get(rid))["status"] == "waiting_for_stock"
    await dispatch.deliver(StockRestored(item_id="rice", depot_id="D1", on_hand=50))
    assert (await dispatch.get(rid))["status"] == "awaiting_stock"
    raised = await dispatch.outbox("RequestRaised")
    assert [e["data"].get("reservation_attempt") for e in raised] == [None, 2] and raised[1]["subject"] == rid

    await dispatch.deliver(StockReserved(request_id=rid, lines=[ReservationLine(item_id="rice", quantity=5)]))
    assert (await dispatch.get(rid))["status"] == "assigned"


async def test_hours_redeemed_raise_the_request_once_or_cancel_for_a_refund(dispatch):
    await dispatch.resident("R1", tags=["elderly"])
    await dispatch.volunteer("Wang")
    redeemed = HoursRedeemed(
        member_id="M7",
        hours=2,
        reason="groceries for R1",
        request_id="TB-1",
        redemption_id="RD-1",
        for_member_id="R1",
        purpose="groceries",
    )
    envelopes = await dispatch.deliver(redeemed)
    request = await dispatch.get("TB-1")
    assert request["resident_id"] == "R1" and request["source"] == "timebank" and request["status"] == "assigned"
    await dispatch.deliver(envelopes=envelopes)  # redelivery of the same event
    await dispatch.deliver(redeemed)  # the same redemption published twice
    assert len(await dispatch.outbox("RequestRaised")) == 1

    stranger = HoursRedeemed(
        member_id="M8", hours=1, reason="help", request_id="TB-2", redemption_id="RD-2", purpose="tech_help"
    )
    await dispatch.deliver(stranger)
    cancelled = (await dispatch.outbox("RequestCancelled"))[0]["data"]
    assert cancelled["request_id"] == "TB-2" and cancelled["redemption_id"] == "RD-2" and "M8" in cancelled["reason"]


async def test_overdue_requests_are_reported_once_and_reassigned(dispatch, clock):
    await dispatch.resident("R1")
    first = await dispatch.volunteer("Wang", lat=31.2321, lon=121.4751)
    second = await dispatch.volunteer("Li", lat=31.2400, lon=121.4800)
    rid = (await dispatch.raise_("R1", "groceries"))["request_id"]
    assert (await dispatch.get(rid))["volunteer_id"] == first
    assert (await dispatch.client.post("/jobs/overdue", headers=dispatch.dispatcher)).json()["affected"] == 0
    clock.advance(hours=25)
    assert (await dispatch.client.post("/jobs/overdue", headers=dispatch.dispatcher)).json()["affected"] == 1
    overdue = (await dispatch.outbox("RequestOverdue"))[0]["data"]
    assert overdue["request_id"] == rid and overdue["volunteer_id"] == first
    reassigned = await dispatch.get(rid)
    assert reassigned["volunteer_id"] == second and reassigned["priority"] == "urgent"
    assert (await dispatch.outbox("RequestAssigned"))[-1]["data"]["previous_volunteer_id"] == first
    assert await dispatch.service.sweep_overdue() == 0


async def test_a_failed_delivery_records_why_and_goes_back_in_the_queue(dispatch):
    await dispatch.resident("R1")
    wang = await dispatch.volunteer("Wang")
    rid = (await dispatch.raise_("R1"))["request_id"]
    failed = await dispatch.client.post(
        f"/requests/{rid}/fail",
        json={"volunteer_id": wang, "reason": "nobody home"},
        headers=dispatch.as_("volunteer", wang),
    )
    assert failed.status_code == 200
    body = failed.json()
    assert body["failed_attempts"] == 1 and any("nobody home" in (h["note"] or "") for h in body["history"])
    assert body["status"] == "assigned"  # back in the queue and taken again
    assert (await dispatch.outbox("DeliveryFailed"))[0]["data"]["reason"] == "nobody home"


async def test_planning_with_nothing_pending_is_an_empty_plan(dispatch):
    await dispatch.volunteer("Wang")
    plan = await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)
    assert plan.status_code == 200 and plan.json()["runs"] == [] and plan.json()["considered"] == 0
    assert await dispatch.outbox("DeliveryPlanned") == []
    assert (await dispatch.client.get("/runs/RUN-nope", headers=dispatch.dispatcher)).status_code == 404


async def test_runs_batch_many_deliveries_within_capacity(dispatch):
    volunteers = [await dispatch.volunteer(f"V{i}", capacity=6) for i in range(3)]
    ids = []
    for i in range(15):
        await dispatch.resident(f"R{i}", lat=31.2304 + 0.0008 * (i % 5), lon=121.4737 + 0.001 * (i // 5))
        ids.append((await dispatch.raise_(f"R{i}"))["request_id"])
    plan = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()
    planned = [s["request_id"] for run in plan["runs"] for s in run["stops"]]
    assert sorted(planned) == sorted(ids) and plan["unplanned"] == []
    assert all(len(run["stops"]) <= 6 and run["volunteer_id"] in volunteers for run in plan["runs"])
    assert len(await dispatch.outbox("DeliveryPlanned")) == len(plan["runs"])
    again = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()
    assert again["runs"] == []  # nothing is planned twice


async def test_green_channel_raises_refills_ahead_once(dispatch, clock):
    await dispatch.resident("R1", tags=["chronic"])
    await dispatch.resident("R2")
    await dispatch.volunteer("Wang")
    body = {
        "resident_id": "R1",
        "items": [{"item_id": "metformin", "quantity": 1}],
        "every_days": 30,
        "first_due": (clock.now() + timedelta(days=5)).isoformat(),
    }
    created = await dispatch.client.post("/recurrences", json=body, headers=dispatch.as_("resident", "R1"))
    assert created.status_code == 201, created.text
    assert await dispatch.outbox("RequestRaised") == []  # not yet: raised two days ahead
    clock.advance(days=3)
    assert await dispatch.service.raise_refills() == 1
    assert await dispatch.service.raise_refills() == 0
    raised = (await dispatch.outbox("RequestRaised"))[0]["data"]
    assert raised["source"] == "green_channel" and raised["priority"] == "urgent" and raised["category"] == "medicine"
    refused = await dispatch.client.post(
        "/recurrences", json={**body, "resident_id": "R2"}, headers=dispatch.dispatcher
    )
    assert refused.status_code == 422 and "not tagged chronic" in refused.json()["detail"]


async def test_demand_stats_and_a_surge_with_its_suggested_action(dispatch, clock):
    for i in range(4):
        await dispatch.resident(f"R{i}", grid="G1" if i < 2 else "G2")
    await dispatch.volunteer("Wang", capacity=100)
    for day in range(6):  # a quiet week: one grocery request a day
        await dispatch.raise_(f"R{day % 4}", "groceries")
        clock.advance(days=1)
    for i in range(10):  # then ten in one morning
        await dispatch.raise_(f"R{i % 4}", "groceries")
        clock.advance(minutes=10)
    clock.advance(hours=6)
    assert await dispatch.service.detect_surges() == 1
    assert await dispatch.service.detect_surges() == 0
    surge = (await dispatch.outbox("DemandSurge"))[0]["data"]
    assert surge["category"] == "groceries" and surge["count"] == 10 and surge["baseline"] < 1
    assert "supermarket" in surge["suggested_action"] and surge["p_value"] < 0.01
    stats = (
        await dispatch.client.get("/stats/demand", params={"bucket": "day"}, headers=dispatch.as_("command", "c1"))
    ).json()
    assert stats["totals"]["groceries"] == 16
    assert sum(c["groceries"] for c in stats["by_grid"].values()) == 16 and set(stats["by_grid"]) == {"G1", "G2"}
    assert stats["surges"][0]["category"] == "groceries"
    assert (await dispatch.client.get("/stats/demand", headers=dispatch.as_("resident", "R1"))).status_code == 403


async def test_a_plan_says_why_each_delivery_was_left_out(dispatch):
    """A depot far from the requests plans nothing, and says so per stop; so does a slot
    with more deliveries than places, or no volunteer at all."""
    await dispatch.resident("R-near", lat=31.2320, lon=121.4750)
    await dispatch.resident("R-far", lat=31.2330, lon=121.4760)
    near = (await dispatch.raise_("R-near"))["request_id"]
    far = (await dispatch.raise_("R-far"))["request_id"]
    nobody = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()
    assert {(u["request_id"], u["reason"]) for u in nobody["unplanned"]} == {
        (near, "no_volunteer"),
        (far, "no_volunteer"),
    }

    await dispatch.volunteer("Wang", capacity=1)
    distant_depot = {"depot_lat": 31.60, "depot_lon": 121.90}  # ~57 km away: 4 h by e-bike each way
    plan = (await dispatch.client.post("/runs/plan", json=distant_depot, headers=dispatch.dispatcher)).json()
    assert plan["runs"] == [] and plan["considered"] == 2
    reasons = {u["request_id"]: u for u in plan["unplanned"]}
    assert set(reasons) == {near, far}
    for unplanned in reasons.values():
        assert unplanned["reason"] in ("out_of_reach", "too_late")
        assert unplanned["distance_m"] > 50_000 and "depot" in unplanned["detail"]
        assert unplanned["needed_minutes"] > unplanned["available_minutes"]
    assert await dispatch.outbox("DeliveryPlanned") == []

    full = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()
    assert sum(len(run["stops"]) for run in full["runs"]) == 1
    [left] = full["unplanned"]
    assert left["reason"] == "capacity" and "hold 1" in left["detail"]


async def test_a_dispatcher_assigns_a_request_by_hand(dispatch):
    await dispatch.resident("R1")
    rid = (await dispatch.raise_("R1", "tech_help"))["request_id"]  # no tech volunteer: it waits
    assert (await dispatch.get(rid))["status"] == "pending"
    li = await dispatch.volunteer("Li", group="errands")
    refused = await dispatch.client.post(
        f"/requests/{rid}/assign", json={"volunteer_id": li}, headers=dispatch.as_("volunteer", li)
    )
    assert refused.status_code == 403
    unknown = await dispatch.client.post(
        f"/requests/{rid}/assign", json={"volunteer_id": "V-nobody"}, headers=dispatch.dispatcher
    )
    assert unknown.status_code == 404
    assert await dispatch.outbox("RequestAssigned") == []

    done = await dispatch.client.post(
        f"/requests/{rid}/assign", json={"volunteer_id": li, "note": "knows phones"}, headers=dispatch.dispatcher
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "assigned" and body["volunteer_id"] == li
    assert any("by hand" in (h["note"] or "") and "knows phones" in h["note"] for h in body["history"])
    [assigned] = await dispatch.outbox("RequestAssigned")
    assert assigned["data"]["volunteer_id"] == li and assigned["data"]["previous_volunteer_id"] is None


async def test_a_request_in_a_run_is_not_assigned_by_hand(dispatch):
    await dispatch.resident("R1")
    wang = await dispatch.volunteer("Wang")
    li = await dispatch.volunteer("Li", lat=31.30, lon=121.50)
    rid = (await dispatch.raise_("R1"))["request_id"]
    plan = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()
    assert [s["request_id"] for run in plan["runs"] for s in run["stops"]] == [rid]
    moved = await dispatch.client.post(
        f"/requests/{rid}/assign", json={"volunteer_id": li}, headers=dispatch.dispatcher
    )
    assert moved.status_code == 422 and "in run" in moved.json()["detail"]
    assert (await dispatch.get(rid))["volunteer_id"] in (wang, li)


async def test_a_request_names_its_volunteer_to_the_resident_and_their_grid_worker(dispatch):
    await dispatch.resident("R1")
    await dispatch.volunteer("王芳")
    request = await dispatch.raise_("R1", "groceries")
    mine = await dispatch.client.get(f"/requests/{request['request_id']}", headers=dispatch.as_("resident", "R1"))
    assert mine.json()["volunteer_name"] == "王芳"
    listed = await dispatch.client.get("/requests", headers=dispatch.as_("grid_worker", "gw-1", grid_ids=["G1"]))
    assert [r["volunteer_name"] for r in listed.json()] == ["王芳"]
    waiting = await dispatch.raise_("R1", "tech_help")  # no tech volunteer yet: nobody to name
    assert (await dispatch.get(waiting["request_id"]))["volunteer_name"] is None
