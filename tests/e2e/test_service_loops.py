"""The one-stop service loop across the running services, talking only through Kafka:
a resident's request is reserved by supplies, assigned and routed by dispatch, fulfilled
by a volunteer, credited by the time bank and issued from stock; a request short of
stock waits, gets a ticket in the command center, and resumes when stock arrives."""

from __future__ import annotations

import uuid

import pytest

from support import wait_for

pytestmark = pytest.mark.e2e


async def _json_when(client, path: str, headers, ok):
    response = await client.get(path, headers=headers)
    if response.status_code == 200 and ok(body := response.json()):
        return body
    return None


async def setup_community(stack, suffix: str, *, stock: float, threshold: float = 5) -> dict:
    admin = stack.token("admin", "e2e-admin")
    ids = {"admin": admin}
    async with (
        stack.client("checkin") as checkin,
        stack.client("supplies") as supplies,
        stack.client("dispatch") as dispatch,
    ):
        resident = await checkin.post(
            "/residents",
            json={
                "name": f"居民{suffix}",
                "phone": "13800000000",
                "grid_id": "G1",
                "building_id": f"L{suffix}",
                "unit": "1",
                "room": "101",
                "tags": ["elderly"],
                "lat": 31.2312,
                "lon": 121.4748,
            },
            headers=admin,
        )
        assert resident.status_code == 201, resident.text
        ids["resident"] = resident.json()["resident_id"]
        item = await supplies.post(
            "/items",
            json={
                "sku": f"FOOD-{suffix}",
                "name": "食品包",
                "unit": "package",
                "category": "food",
                "threshold": threshold,
            },
            headers=admin,
        )
        assert item.status_code == 201, item.text
        ids["item"] = item.json()["item_id"]
        depot = await supplies.post(
            "/depots",
            json={"name": f"社区站{suffix}", "lat": 31.2304, "lon": 121.4737, "kind": "community_station"},
            headers=admin,
        )
        assert depot.status_code == 201, depot.text
        ids["depot"] = depot.json()["depot_id"]
        received = await supplies.post(
            "/stock/receipts",
            json={
                "depot_id": ids["depot"],
                "item_id": ids["item"],
                "quantity": stock,
                "source": "government_allocation",
            },
            headers=admin,
        )
        assert received.status_code == 201, received.text
        ids["volunteer"] = f"V-{suffix}"
        volunteer = await dispatch.post(
            "/volunteers",
            json={
                "volunteer_id": ids["volunteer"],
                "name": "小李",
                "group": "errands",
                "lat": 31.2306,
                "lon": 121.4739,
                "capacity": 5,
                "phone": "13900000000",
            },
            headers=admin,
        )
        assert volunteer.status_code == 201, volunteer.text
    return ids


async def raise_request(stack, ids: dict, quantity: float) -> str:
    """Dispatch learns residents from check-in's events: raise once it knows this one."""
    async with stack.client("dispatch") as dispatch:

        async def raised():
            response = await dispatch.post(
                "/requests",
                json={
                    "resident_id": ids["resident"],
                    "category": "groceries",
                    "details": "米和油",
                    "items": [{"item_id": ids["item"], "quantity": quantity}],
                },
                headers=ids["admin"],
            )
            return response.json()["request_id"] if response.status_code == 201 else None

        return await wait_for(raised, timeout=60, interval=0.5, what="dispatch to learn the resident from Kafka")


async def test_request_reserved_assigned_routed_fulfilled_credited_and_issued(stack):
    suffix = uuid.uuid4().hex[:6]
    ids = await setup_community(stack, suffix, stock=10)
    request_id = await raise_request(stack, ids, 2)
    admin = ids["admin"]
    async with (
        stack.client("dispatch") as dispatch,
        stack.client("supplies") as supplies,
        stack.client("timebank") as timebank,
    ):
        assigned = await wait_for(
            lambda: _json_when(dispatch, f"/requests/{request_id}", admin, lambda r: r["status"] == "assigned"),
            timeout=60,
            what="StockReserved from supplies, then an assignment",
        )
        assert (
            assigned["volunteer_id"] == ids["volunteer"] and assigned["priority"] != "low"
        )  # an elderly resident is never at the back
        position = (await supplies.get("/stock", params={"item_id": ids["item"]}, headers=admin)).json()["stock"][0]
        assert position["reserved"] == 2 and position["available"] == 8

        plan = await dispatch.post("/runs/plan", json={"volunteer_ids": [ids["volunteer"]]}, headers=admin)
        assert plan.status_code == 200, plan.text
        [run] = [r for r in plan.json()["runs"] if request_id in [s["request_id"] for s in r["stops"]]]
        sheet = await dispatch.get(
            f"/runs/{run['run_id']}", params={"format": "text"}, headers=stack.token("volunteer", ids["volunteer"])
        )
        assert sheet.status_code == 200 and "101" in sheet.text

        volunteer = stack.token("volunteer", ids["volunteer"])
        done = await dispatch.post(
            f"/requests/{request_id}/fulfil",
            json={"volunteer_id": ids["volunteer"], "service_minutes": 45},
            headers=volunteer,
        )
        assert done.status_code == 200, done.text

        balance = await wait_for(
            lambda: _json_when(timebank, f"/members/{ids['volunteer']}/balance", volunteer, lambda b: b["hours"] > 0),
            timeout=60,
            what="HoursCredited in the time bank",
        )
        assert balance["hours"] == pytest.approx(0.75, abs=0.26)  # 45 minutes, rounded by the bank's rule
        issued = await wait_for(
            lambda: _json_when(
                supplies, f"/stock?item_id={ids['item']}", admin, lambda s: s["stock"][0]["on_hand"] == 8
            ),
            timeout=60,
            what="the reservation turned into an issue",
        )
        assert issued["stock"][0]["reserved"] == 0


async def test_a_request_short_of_stock_gets_a_ticket_and_resumes_when_stock_arrives(stack):
    suffix = uuid.uuid4().hex[:6]
    ids = await setup_community(stack, suffix, stock=1, threshold=5)
    request_id = await raise_request(stack, ids, 3)
    admin = ids["admin"]
    async with (
        stack.client("dispatch") as dispatch,
        stack.client("supplies") as supplies,
        stack.client("command") as command,
    ):
        waiting = await wait_for(
            lambda: _json_when(
                dispatch, f"/requests/{request_id}", admin, lambda r: r["status"] == "waiting_for_stock"
            ),
            timeout=60,
            what="ReservationRejected to reach dispatch",
        )
        assert waiting["shortages"][0]["item_id"] == ids["item"]
        ticket = await wait_for(
            lambda: _json_when(
                command,
                "/tickets?kind=reservation_rejected",
                admin,
                lambda tickets: any(t["subject_id"] == request_id for t in tickets),
            ),
            timeout=60,
            what="a command-center ticket for the rejected reservation",
        )
        [mine] = [t for t in ticket if t["subject_id"] == request_id]
        assert mine["owner"] and mine["respond_by"] and mine["resolve_by"]
        # 1 on hand against a minimum of 5: supplies said StockLow, the officer got a ticket.
        stock_key = f"{ids['item']}:{ids['depot']}"
        shortage = await wait_for(
            lambda: _json_when(
                command,
                "/tickets?kind=stock_shortage",
                admin,
                lambda tickets: [t for t in tickets if t["subject_id"] == stock_key],
            ),
            timeout=60,
            what="a stock-shortage ticket from StockLow",
        )
        assert shortage[0]["department"] == "supplies" and shortage[0]["owner"]

        received = await supplies.post(
            "/stock/receipts", json={"depot_id": ids["depot"], "item_id": ids["item"], "quantity": 20}, headers=admin
        )
        assert received.status_code == 201
        resumed = await wait_for(
            lambda: _json_when(dispatch, f"/requests/{request_id}", admin, lambda r: r["status"] == "assigned"),
            timeout=60,
            what="StockRestored -> the reservation tried again -> assigned",
        )
        assert resumed["volunteer_id"] == ids["volunteer"]
