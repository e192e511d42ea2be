"""The supplies officer's and the dispatcher's pages against the real supplies and dispatch
apps in-process: what the person does on the page, its effect read back through the APIs."""

from __future__ import annotations

import re

from aiokafka import ConsumerRecord
from more_services import behind

from common import envelope as ce
from common.events.checkin import ResidentRegistered
from support import bearer

ADMIN = bearer("admin", "admin-1")


def path_of(url: str) -> str:
    return url.removeprefix("http://portal")


async def sign_in(portal, client, role: str, sub: str) -> str:
    response = await client.get(path_of(await portal.invite(role, sub)))
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def test_the_supplies_officer_receives_issues_and_accepts_a_transfer(portal, tmp_path, clock):
    async with behind(portal, tmp_path, clock) as services:
        supplies = services["supplies"]
        item = await supplies.post(
            "/items",
            json={"sku": "MASK-N95", "name": "N95口罩", "unit": "盒", "category": "protective", "threshold": 20},
            headers=ADMIN,
        )
        assert item.status_code == 201, item.text
        item_id = item.json()["item_id"]
        for depot_id, name, lat in (("D-station", "社区物资站", 31.2304), ("D-B03", "3栋物资点", 31.2320)):
            created = await supplies.post(
                "/depots", json={"depot_id": depot_id, "name": name, "lat": lat, "lon": 121.4737}, headers=ADMIN
            )
            assert created.status_code == 201, created.text

        async with portal.browser() as officer:
            assert await sign_in(portal, officer, "supplies_officer", "officer-1") == "/supplies"
            for depot_id, quantity in (("D-station", "200"), ("D-B03", "2")):
                received = await officer.post(
                    "/supplies/receipts", data={"depot_id": depot_id, "item_id": item_id, "quantity": quantity}
                )
                assert received.status_code == 303 and received.headers["location"] == "/supplies?done=received"
            page = await officer.get("/supplies")
            assert page.status_code == 200 and "需要补货（1 项）" in page.text and "3栋物资点" in page.text

            too_many = await officer.post(
                "/supplies/issues", data={"depot_id": "D-B03", "item_id": item_id, "quantity": "50"}
            )
            assert "error=" in too_many.headers["location"]
            bad = await officer.post(
                "/supplies/issues", data={"depot_id": "D-B03", "item_id": item_id, "quantity": "-1"}
            )
            assert bad.headers["location"] == "/supplies?error=ops.quantity_invalid"
            issued = await officer.post(
                "/supplies/issues",
                data={"depot_id": "D-station", "item_id": item_id, "quantity": "10", "reason": "发热门诊"},
            )
            assert issued.headers["location"] == "/supplies?done=issued"

            assert (await officer.post("/supplies/rebalance")).headers["location"] == "/supplies?done=rebalanced"
            page = await officer.get("/supplies")
            [suggestion_id] = re.findall(r'data-suggestion="(\d+)"', page.text)
            assert "从 社区物资站 调" in page.text and "到 3栋物资点" in page.text
            accepted = await officer.post(f"/supplies/suggestions/{suggestion_id}/accept")
            assert accepted.headers["location"] == "/supplies?done=transferred"
            again = await officer.post(f"/supplies/suggestions/{suggestion_id}/accept")
            assert again.headers["location"] == "/supplies?error=ops.suggestion_gone"

        levels = {p["depot_id"]: p for p in (await supplies.get("/stock", headers=ADMIN)).json()["stock"]}
        assert levels["D-B03"]["on_hand"] >= 20 and levels["D-B03"]["state"] == "ok"
        assert levels["D-station"]["on_hand"] + levels["D-B03"]["on_hand"] == 192  # 202 received, 10 issued
        assert (await supplies.get("/stock/transfers/suggestions", headers=ADMIN)).json() == []
        ledger = (await supplies.get("/stock/ledger", headers=ADMIN)).json()
        assert {m["by"] for m in ledger} == {"officer-1"}


async def test_the_dispatcher_plans_a_slot_sees_why_and_assigns_by_hand(portal, tmp_path, clock):
    async with behind(portal, tmp_path, clock) as services:
        dispatch, supplies = services["dispatch"], services["supplies"]
        far = await supplies.post(
            "/depots", json={"depot_id": "D-far", "name": "城外仓库", "lat": 31.60, "lon": 121.90}, headers=ADMIN
        )
        assert far.status_code == 201, far.text
        event = ResidentRegistered(
            resident_id="R-1", community_id="C1", grid_id="G1", building_id="B03", tags=["elderly"],
            name="王芳", phone="13800000000", unit="2", room="401", lat=31.2320, lon=121.4750,
        )  # fmt: skip
        value = ce.encode(ce.wrap(event, at=clock.now()))
        record = ConsumerRecord("checkin.residents.v1", 0, 1, 0, 0, b"R-1", value, None, 0, len(value), ())
        await services["apps"]["dispatch"].state.runtime.runners[0].handle([record])
        volunteer = {"name": "李强", "group": "errands", "lat": 31.2310, "lon": 121.4740, "capacity": 5, "phone": "139"}
        li = (await dispatch.post("/volunteers", json=volunteer, headers=ADMIN)).json()["volunteer_id"]
        raised = await dispatch.post(
            "/requests", json={"resident_id": "R-1", "category": "groceries", "details": "大米"}, headers=ADMIN
        )
        request_id = raised.json()["request_id"]

        async with portal.browser() as dispatcher:
            assert await sign_in(portal, dispatcher, "dispatcher", "dispatcher-1") == "/dispatch"
            page = await dispatcher.get("/dispatch")
            assert page.status_code == 200 and "城外仓库" in page.text
            slot = {"date": "2026-11-21", "start": "09:30", "end": "12:30"}
            planned = await dispatcher.post("/dispatch/plan", data={**slot, "depot_id": "D-far"})
            assert planned.status_code == 200, planned.text
            assert "排出 0 条路线：共 1 单，1 单没排上" in planned.text
            assert f'data-request="{request_id}" data-reason="too_late"' in planned.text
            why = re.search(r'class="why">([^<]*)', planned.text).group(1)
            assert why.startswith(
                "离出发的物资点 57.5 公里，骑过去要 247 分钟，但必须在时段开始后 180 分钟内送到。"
            )  # 14 km/h
            bad = await dispatcher.post("/dispatch/plan", data={**slot, "start": "9点"})
            assert bad.status_code == 422 and "请填写正确的日期和时间" in bad.text

            assigned = await dispatcher.post(
                f"/dispatch/requests/{request_id}/assign", data={"volunteer_id": li, "note": "顺路"}
            )
            assert assigned.headers["location"] == "/dispatch?done=assigned"
            missing = await dispatcher.post("/dispatch/requests/RQ-none/assign", data={"volunteer_id": li})
            assert "error=" in missing.headers["location"]

            near = await dispatcher.post("/dispatch/plan", data=slot)
            assert "排出 1 条路线" in near.text and "/paper/runs/RUN-" in near.text

        after = (await dispatch.get(f"/requests/{request_id}", headers=ADMIN)).json()
        assert after["volunteer_id"] == li and after["status"] == "planned"
        assert any("by hand" in (h["note"] or "") and h["by"] == "dispatcher-1" for h in after["history"])


async def test_desks_are_for_their_roles(portal):
    async with portal.browser() as lead:
        await sign_in(portal, lead, "volunteer", "vol-1")
        for path in ("/supplies", "/dispatch"):
            refused = await lead.get(path)
            assert refused.status_code == 403 and "物资管理员、调度员" in refused.text
    async with portal.browser() as nobody:
        assert (await nobody.get("/supplies")).headers["location"] == "/"
