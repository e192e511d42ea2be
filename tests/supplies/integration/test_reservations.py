"""Reservations for deliveries: from dispatch's events (through the consumer, as Kafka
would deliver them) and over HTTP; and the race that must never oversell."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord

from common import envelope as ce
from common.events.dispatch import ItemLine, RequestAssigned, RequestCancelled, RequestFulfilled, RequestRaised
from common.topics import DISPATCH_EVENTS

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)


def record(event, offset: int = 0, envelope=None) -> ConsumerRecord:
    envelope = envelope or ce.wrap(event, at=event_time())
    value = ce.encode(envelope)
    return ConsumerRecord(DISPATCH_EVENTS, 0, offset, 0, 0, envelope.subject.encode(), value, None, 0, len(value), [])


def event_time() -> datetime:
    return START


def raised(request_id: str, *lines: tuple[str, float], due_in_hours: int = 4) -> RequestRaised:
    return RequestRaised(
        request_id=request_id,
        resident_id="R-1",
        category="groceries",
        priority="normal",
        due_by=START + timedelta(hours=due_in_hours),
        items=[ItemLine(item_id=i, quantity=q) for i, q in lines],
    )


async def deliver(supplies, *events) -> None:
    runner = supplies.runtime.runners[0]
    await runner.handle([record(e, offset=n) for n, e in enumerate(events)])


async def test_raise_reserve_fulfil_issue(supplies):
    mask = await supplies.item("MASK")
    rice = await supplies.item("RICE", category="food")
    station = await supplies.depot("Station")
    b1 = await supplies.depot("B1")
    await supplies.receive(mask, station, 10)
    await supplies.receive(mask, b1, 3)
    await supplies.receive(rice, b1, 5)

    await deliver(supplies, raised("REQ-1", (mask, 12), (rice, 2)))
    reserved = await supplies.outbox("StockReserved")
    assert len(reserved) == 1 and reserved[0]["subject"] == "REQ-1"
    lines = sorted((line["item_id"], line["depot_id"], line["quantity"]) for line in reserved[0]["data"]["lines"])
    assert lines == sorted([(mask, station, 10), (mask, b1, 2), (rice, b1, 2)])
    assert (await supplies.position(mask, station))["available"] == 0
    assert (await supplies.position(mask, station))["on_hand"] == 10

    refused = await supplies.issue(mask, b1, 2, expect=409)  # 1 of 3 is free: reservations hold
    assert "1 available" in refused["detail"]

    await deliver(supplies, RequestFulfilled(request_id="REQ-1", volunteer_id="V-1", service_minutes=20))
    reservation = await supplies.get("/reservations/REQ-1")
    assert reservation["status"] == "issued"
    issues = await supplies.get("/stock/ledger", request_id="REQ-1")
    assert sorted((m["item_id"], m["depot_id"], m["quantity"], m["by"]) for m in issues) == sorted(
        [(mask, station, -10, "V-1"), (mask, b1, -2, "V-1"), (rice, b1, -2, "V-1")]
    )
    assert (await supplies.position(mask, station))["on_hand"] == 0
    assert (await supplies.position(mask, b1))["reserved"] == 0
    assert (await supplies.get("/stock/audit"))["consistent"]


async def test_every_line_or_none_and_the_shortages_said(supplies):
    mask = await supplies.item("MASK")
    rice = await supplies.item("RICE", category="food")
    depot = await supplies.depot("Station")
    await supplies.receive(mask, depot, 10)
    await supplies.receive(rice, depot, 1)
    await deliver(supplies, raised("REQ-2", (mask, 4), (rice, 3), ("I-unknown", 1)))
    rejected = await supplies.outbox("ReservationRejected")
    assert len(rejected) == 1 and rejected[0]["subject"] == "REQ-2"
    shortages = {s["item_id"]: (s["requested"], s["available"]) for s in rejected[0]["data"]["shortages"]}
    assert shortages == {rice: (3, 1), "I-unknown": (1, 0)}
    assert await supplies.outbox("StockReserved") == []
    assert (await supplies.position(mask, depot))["reserved"] == 0  # the mask line was not taken
    assert (await supplies.get("/reservations/REQ-2"))["status"] == "rejected"


async def test_cancelling_releases_and_redelivery_changes_nothing(supplies):
    mask = await supplies.item("MASK")
    depot = await supplies.depot("Station")
    await supplies.receive(mask, depot, 10)
    first = raised("REQ-3", (mask, 6))
    envelope = ce.wrap(first, at=event_time())
    runner = supplies.runtime.runners[0]
    await runner.handle([record(first, 1, envelope)])
    await runner.handle([record(first, 1, envelope)])  # the same event again
    await deliver(supplies, raised("REQ-3", (mask, 6)))  # dispatch raising the same request twice
    assert (await supplies.position(mask, depot))["reserved"] == 6
    assert len(await supplies.outbox("StockReserved")) == 1

    cancel = ce.wrap(RequestCancelled(request_id="REQ-3", reason="resident went to hospital"), at=event_time())
    await runner.handle([record(None, 2, cancel), record(None, 2, cancel)])
    assert (await supplies.position(mask, depot))["reserved"] == 0
    released = await supplies.outbox("ReservationReleased")
    assert len(released) == 1 and "hospital" in released[0]["data"]["reason"]
    # A fulfilment after a cancellation issues nothing.
    await deliver(supplies, RequestFulfilled(request_id="REQ-3", volunteer_id="V-1", service_minutes=5))
    assert (await supplies.position(mask, depot))["on_hand"] == 10
    assert (await supplies.get("/reservations/REQ-3"))["status"] == "released"


async def test_events_it_does_not_apply_are_ignored_and_requests_without_items_reserve_nothing(supplies):
    await deliver(
        supplies,
        RequestAssigned(request_id="REQ-4", volunteer_id="V-1"),
        raised("REQ-5"),
    )
    assert await supplies.outbox() == []
    missing = await supplies.client.get("/reservations/REQ-5", headers=supplies.officer)
    assert missing.status_code == 404


async def test_reservations_over_http_are_the_same_use_case(supplies):
    mask = await supplies.item("MASK")
    depot = await supplies.depot("Station")
    other = await supplies.depot("Other")
    await supplies.receive(mask, depot, 5)
    dispatcher = supplies.as_("dispatcher", "disp-1")
    body = {"request_id": "REQ-6", "lines": [{"item_id": mask, "quantity": 2}], "depot_id": other}
    pinned = await supplies.client.post("/reservations", json=body, headers=dispatcher)
    assert pinned.json()["status"] == "rejected"  # nothing at the other depot
    body = {"request_id": "REQ-7", "lines": [{"item_id": mask, "quantity": 2}]}
    held = await supplies.client.post("/reservations", json=body, headers=dispatcher)
    assert held.status_code == 200 and held.json()["status"] == "held"
    bad = await supplies.client.post(
        "/reservations", json={"request_id": "REQ-8", "lines": [{"item_id": mask, "quantity": -1}]}, headers=dispatcher
    )
    assert bad.status_code == 422 and "more than 0" in bad.json()["detail"]
    released = await supplies.client.post(
        "/reservations/REQ-7/release", json={"reason": "duplicate"}, headers=dispatcher
    )
    assert released.json()["status"] == "released"
    assert (await supplies.position(mask, depot))["reserved"] == 0


async def test_200_concurrent_reservations_for_100_units_get_exactly_100(supplies):
    """Concurrent transactions on PostgreSQL (row locks); on SQLite one writer at a time
    serialises them just the same, so the test runs on both."""
    mask = await supplies.item("MASK")
    depot = await supplies.depot("Station")
    other = await supplies.depot("Other")
    await supplies.receive(mask, depot, 60)
    await supplies.receive(mask, other, 40)
    service = supplies.service

    async def reserve(n: int):
        return await service.reserve(f"RACE-{n}", [(mask, 1)], "race")

    async def issue_one():  # issues race the reservations for the same units
        try:
            await service.issue("race", depot_id=depot, item_id=mask, quantity=1)
            return 1
        except Exception:  # noqa: BLE001 - refused for want of stock: that is the point
            return 0

    results = await asyncio.gather(*(reserve(n) for n in range(200)), *(issue_one() for _ in range(20)))
    held = sum(1 for r in results[:200] if r.status == "held")
    issued = sum(results[200:])
    assert held + issued == 100
    positions = {p["depot_id"]: p for p in (await supplies.get("/stock", item_id=mask))["stock"]}
    assert all(p["on_hand"] >= p["reserved"] >= 0 for p in positions.values())
    assert sum(p["reserved"] for p in positions.values()) == held
    assert sum(p["available"] for p in positions.values()) == 0
    assert len(await supplies.outbox("StockReserved")) == held
    assert len(await supplies.outbox("ReservationRejected")) == 200 - held
    assert (await supplies.get("/stock/audit"))["consistent"]


async def test_a_cancellation_and_a_fulfilment_racing_act_once_and_the_same_request_reserves_once(supplies):
    mask = await supplies.item("MASK")
    depot = await supplies.depot("Station")
    await supplies.receive(mask, depot, 10)
    service = supplies.service
    await asyncio.gather(
        *(service.reserve("REQ-TWICE", [(mask, 3)], "disp") for _ in range(5)), return_exceptions=False
    )
    assert (await supplies.position(mask, depot))["reserved"] == 3
    await service.reserve("REQ-RACE", [(mask, 4)], "disp")
    await asyncio.gather(service.release("REQ-RACE", "cancelled"), service.fulfil("REQ-RACE", "V-1"))
    status = (await supplies.get("/reservations/REQ-RACE"))["status"]
    issued = await supplies.get("/stock/ledger", request_id="REQ-RACE")
    position = await supplies.position(mask, depot)
    assert position["reserved"] == 3  # REQ-TWICE still holds its 3, REQ-RACE holds nothing
    assert (status, len(issued), position["on_hand"]) in {("released", 0, 10), ("issued", 1, 6)}


async def test_a_rejected_reservation_is_planned_again_when_dispatch_retries(supplies):
    mask = await supplies.item("MASK-R")
    station = await supplies.depot("Station-R")
    await supplies.receive(mask, station, 2)
    await deliver(supplies, raised("REQ-R", (mask, 5)))
    assert len(await supplies.outbox("ReservationRejected")) == 1

    await deliver(supplies, raised("REQ-R", (mask, 5)))  # a redelivered first attempt: same answer
    assert len(await supplies.outbox("ReservationRejected")) == 1 and await supplies.outbox("StockReserved") == []

    await supplies.receive(mask, station, 10)  # stock comes back; dispatch asks again
    retry = raised("REQ-R", (mask, 5)).model_copy(update={"reservation_attempt": 2})
    await deliver(supplies, retry)
    [reserved] = await supplies.outbox("StockReserved")
    assert reserved["subject"] == "REQ-R" and reserved["data"]["lines"][0]["quantity"] == 5
    assert (await supplies.position(mask, station))["available"] == 7
