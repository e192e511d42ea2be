"""Partner desks and the figures screen as a browser drives them, against the real check-in,
command and supplies apps in-process: a desk's inbox is what its partner topic
carries, and no page a property or police desk can reach holds a health field."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import date, timedelta

import httpx
import pytest
from aiokafka import ConsumerRecord

from checkin.main import create_app as checkin_app
from checkin.settings import CheckinSettings
from command.main import create_app as command_app
from command.settings import CommandSettings
from common import envelope as ce
from common.events.base import Event
from common.events.checkin import CheckInMissed, HealthAnomalyReported
from portal.main import create_app as portal_app
from portal.settings import PortalSettings
from supplies.main import create_app as supplies_app
from supplies.settings import SuppliesSettings
from support import bearer

DAY = date(2026, 11, 21)
_offsets = itertools.count()

# Health values planted in the fixture: none may reach a property or police desk's page.
SENTINELS = (
    "39.87", "loss_of_smell", "闻不到味", "pregnant", "mental_health", "王哨兵", "13899990000", "S909",
    "SENTINEL", "胸闷心悸", "fever", "health_concern", "发热", "健康问题", "体温", "症状", "Temperature",
    "Symptoms", "°C",
)  # fmt: skip


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request to the app named by its host (http://command/... -> command)."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no service at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


class Workbench:
    """The portal (as a browser sees it) with the services behind it."""

    def __init__(self, portal, apps: dict, transport: RoutingTransport) -> None:
        self.portal = portal
        self.apps = apps
        self.transport = transport

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.portal), base_url="http://portal", follow_redirects=False
        )

    def service(self, name: str, role: str = "admin", sub: str = "admin-1", **scopes) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.apps[name]), base_url=f"http://{name}",
            headers=bearer(role, sub, **scopes),
        )  # fmt: skip

    async def deliver(self, name: str, *events: Event) -> None:
        """Hand events to a service's consumer as Kafka records on their own topics."""
        records = []
        for event in events:
            value = ce.encode(ce.wrap(event, at=self.apps[name].state.runtime.clock.now()))
            key = event.subject().encode()
            records.append(
                ConsumerRecord(event.topic, 0, next(_offsets), 0, 0, key, value, None, len(key), len(value), [])
            )
        await self.apps[name].state.runtime.runners[0].handle(records)

    async def sign_in(self, browser: httpx.AsyncClient, role: str, sub: str, **scope) -> None:
        async with self.browser() as admin:
            invited = await admin.post(
                "/admin/invitations", json={"role": role, "sub": sub, **scope}, headers=bearer("admin", "admin-1")
            )
        assert invited.status_code == 201, invited.text
        landing = await browser.get(invited.json()["url"].removeprefix("http://portal"))
        assert landing.status_code == 303, landing.text
        browser.headers["x-landing"] = landing.headers["location"]


@pytest.fixture
async def workbench(tmp_path, clock, database_url) -> AsyncIterator[Workbench]:
    quiet = dict(jobs_interval_s=0, kafka_enabled=False)
    db = lambda name: f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
    apps = {
        "checkin": checkin_app(CheckinSettings(database_url=db("checkin"), **quiet), clock=clock),
        "command": command_app(
            CommandSettings(database_url=db("command"), start_consumers=False, **quiet), clock=clock
        ),
        "supplies": supplies_app(SuppliesSettings(database_url=db("supplies"), **quiet), clock=clock),
    }  # fmt: skip
    portal = portal_app(
        PortalSettings(
            database_url=database_url,
            public_url="http://portal",
            **{f"{name}_url": f"http://{name}" for name in ("checkin", "supplies", "dispatch", "timebank", "command")},
            jobs_interval_s=0,
            live_updates=False,
        ),
        clock=clock,
        transport=(transport := RoutingTransport(apps)),
    )
    async with AsyncExitStack() as stack:
        for each in (*apps.values(), portal):
            await stack.enter_async_context(each.router.lifespan_context(each))
        yield Workbench(portal, apps, transport)


async def plant_tickets(bench: Workbench) -> dict[str, str]:
    """A fever and a health concern (health's, the fever shared with property), a follow-up of a
    tagged resident, maintenance for property and an urgent public-order matter for police."""
    await bench.deliver(
        "command",
        HealthAnomalyReported(
            resident_id="R-S1", date=DAY, temperature_c=39.87, symptoms=["loss_of_smell_or_taste"], grid_id="G1",
            building_id="B01", fever=True, name="王哨兵", phone="13899990000", unit="哨9", room="S909", tags=["pregnant"],
        ),
        CheckInMissed(resident_id="R-S2", date=DAY, consecutive_days=3, grid_id="G1", building_id="B01",
                      tags=["mental_health"]),
    )  # fmt: skip
    ids = {}
    async with bench.service("command") as command:
        for category, description, building, priority in (
            ("health_concern", "SENTINEL 胸闷心悸，夜里睡不着", "B01", None),
            ("building_maintenance", "B01 电梯停了", "B01", None),
            ("public_order", "小区门口聚集", "B02", "urgent"),
        ):
            body = {"category": category, "description": description, "building_id": building}
            if priority:
                body["priority"] = priority
            response = await command.post("/tickets", json=body)
            assert response.status_code == 201, response.text
            ids[category] = response.json()["ticket_id"]
    return ids


# Assets, and the API's own description (which names fields such as temperature_c, no values).
NOT_PAGES = ("/static", "/openapi.json", "/docs", "/redoc", "/asyncapi")


def links(html: str) -> set[str]:
    return {h for h in re.findall(r'href="(/[^"]*)"', html) if not h.startswith(NOT_PAGES)}


async def every_page(bench: Workbench, browser: httpx.AsyncClient) -> dict[str, str]:
    """Every GET page of the portal the signed-in browser reaches: each route (path parameters
    filled in), each link on a page, each redirect, in Chinese and in English."""
    fill = {"building_id": "B01", "lang": "zh", "code": "x.y", "token": "x", "household_id": "R-S1"}
    start = {"/", "/lang/en?next=/desk", "/desk/inbox.json"}
    for route in bench.portal.routes:
        path = getattr(route, "path", "")
        if "GET" not in getattr(route, "methods", ()) or path.startswith(NOT_PAGES) or path.endswith("events"):
            continue  # no data; an event stream never ends (its events are checked elsewhere)
        start.add(re.sub(r"{(\w+)}", lambda m: fill.get(m.group(1), "x"), path))
    seen: dict[str, str] = {}
    for lang in ("zh", "en"):
        browser.cookies.set("firstline_lang", lang)
        todo = sorted(start)
        while todo:
            path = todo.pop()
            key = f"{lang}:{path}"
            if key in seen:
                continue
            response = await browser.get(path)
            body = response.text if "pdf" not in response.headers.get("content-type", "") else ""
            seen[key] = body
            if response.status_code in (302, 303, 307) and response.headers["location"].startswith("/"):
                todo.append(response.headers["location"])
            todo.extend(links(body))
    return seen


@pytest.mark.parametrize(
    ("department", "expected_kinds"),
    [("property", {"楼栋防疫措施", "楼栋维修"}), ("police", {"治安秩序"})],
)
async def test_no_page_a_property_or_police_desk_reaches_holds_a_health_field(workbench, department, expected_kinds):
    await plant_tickets(workbench)
    async with workbench.browser() as desk:
        await workbench.sign_in(desk, "partner", f"{department}-duty", department=department)
        assert desk.headers["x-landing"] == "/desk"  # a desk lands on its inbox
        inbox = await desk.get("/desk")
        assert inbox.status_code == 200
        shown = set(re.findall(r"<h2>([^<·]+?)(?: · |</h2>)", inbox.text))
        assert shown == expected_kinds, shown  # what the topic carries, nothing more
        pages = await every_page(workbench, desk)
        # acknowledging and resolving render pages too
        for ticket_id in re.findall(r"/desk/tickets/([\w-]+)/acknowledge", inbox.text):
            acked = await desk.post(f"/desk/tickets/{ticket_id}/acknowledge")
            pages[f"ack:{ticket_id}"] = (await desk.get(acked.headers["location"])).text
        assert len(pages) > 10, sorted(pages)
    for where, body in pages.items():
        found = [s for s in SENTINELS if s in body]
        assert not found, f"{where} shows {found}"


async def test_the_health_desk_sees_what_a_doctor_needs_and_nothing_of_other_departments(workbench):
    ids = await plant_tickets(workbench)
    async with workbench.browser() as desk:
        await workbench.sign_in(desk, "partner", "health-duty", department="health")
        page = (await desk.get("/desk")).text
        assert "39.87 °C" in page and 'href="tel:13899990000"' in page and "闻不到味、尝不出味" in page
        assert "哨9单元 S909室" in page and "王哨兵" in page
        assert "电梯" not in page and "聚集" not in page  # property's and police's tickets are theirs
        assert "pregnant" not in page and "孕" not in page  # tags are not on the health topic either
        poll = (await desk.get("/desk/inbox.json")).json()
        assert poll["open"] == 2 and len(poll["urgent"]) == 1 and "紧急" in poll["alert"]  # the fever
        assert ids["health_concern"] not in poll["urgent"]  # high, not urgent


async def test_the_police_desk_acknowledges_and_resolves_and_command_sees_it(workbench):
    ids = await plant_tickets(workbench)
    ticket_id = ids["public_order"]
    async with workbench.browser() as desk:
        await workbench.sign_in(desk, "partner", "police-duty", department="police")
        page = (await desk.get("/desk")).text
        assert 'role="alert"' in page and "有 1 件紧急工单等待接单" in page
        (reference,) = (await desk.get("/desk/inbox.json")).json()["urgent"]
        assert reference.startswith("ref-")  # the desk knows the ticket by police's own reference

        acked = await desk.post(f"/desk/tickets/{reference}/acknowledge")
        assert acked.status_code == 303 and acked.headers["location"] == "/desk?done=acknowledged"
        page = (await desk.get(acked.headers["location"])).text
        assert "已接单" in page and "处理中" in page and (await desk.get("/desk/inbox.json")).json()["urgent"] == []

        again = await desk.post(f"/desk/tickets/{reference}/acknowledge")  # taken already: said plainly
        assert again.headers["location"] == "/desk?error=desk.refused"
        assert "可能同事已处理" in (await desk.get(again.headers["location"])).text
        empty = await desk.post(f"/desk/tickets/{reference}/resolve", data={"resolution": "  "})
        assert empty.headers["location"] == "/desk?error=desk.resolution_needed"

        done = await desk.post(f"/desk/tickets/{reference}/resolve", data={"resolution": "已疏散，门口恢复秩序"})
        assert done.headers["location"] == "/desk?done=resolved"
        assert "目前没有待处理的工单" in (await desk.get("/desk")).text
        assert "已疏散" not in (finished := (await desk.get("/desk?view=done")).text) and "治安秩序" in finished

        # a ticket of another department is refused by command, not hidden by the portal alone
        other = await desk.post(f"/desk/tickets/{ids['building_maintenance']}/acknowledge")
        assert other.headers["location"] == "/desk?error=desk.refused"

    async with workbench.service("command", "command", "cmd-duty") as command:
        ticket = (await command.get(f"/tickets/{ticket_id}")).json()
    assert (ticket["stage"], ticket["acknowledged_by"], ticket["resolved_by"]) == (
        "resolved",
        "police-duty",
        "police-duty",
    )
    assert ticket["resolution"] == "已疏散，门口恢复秩序"


async def test_only_partner_desks_have_a_desk_and_only_staff_the_screen(workbench):
    async with workbench.browser() as lead:
        await workbench.sign_in(lead, "building_lead", "lead-1", building_ids=["B01"])
        assert (await lead.get("/desk")).status_code == 403
        assert (await lead.get("/screen")).status_code == 403
        assert (await lead.get("/desk/inbox.json")).status_code == 403
        assert (await lead.post("/desk/tickets/T-1/acknowledge")).status_code == 403
    async with workbench.browser() as desk:
        await workbench.sign_in(desk, "partner", "police-duty", department="police")
        assert (await desk.get("/screen")).status_code == 403
    async with workbench.browser() as anyone:
        assert (await anyone.get("/desk")).headers["location"] == "/"
        assert (await anyone.get("/screen")).headers["location"] == "/"


async def seed_figures(bench: Workbench, clock) -> None:
    """Stock with one item below its line, check-ins in two buildings, a sampling round, a
    followed-up key resident, an overdue ticket and a rating. (Dispatch's tables share names
    with command's, so one process cannot hold both: the demand panel is drawn from the real
    dispatch service in tests/portal/browser.)"""
    async with bench.service("supplies") as supplies:
        depot = (await supplies.post("/depots", json={"name": "一号站", "lat": 31.23, "lon": 121.47})).json()
        for sku, name, threshold, received in (("M1", "口罩", 100, 40), ("D1", "消毒液", 10, 50)):
            item = await supplies.post(
                "/items",
                json={"sku": sku, "name": name, "unit": "box", "category": "protective", "threshold": threshold},
            )
            assert item.status_code == 201, item.text
            receipt = await supplies.post(
                "/stock/receipts",
                json={"depot_id": depot["depot_id"], "item_id": item.json()["item_id"], "quantity": received},
            )
            assert receipt.status_code == 201, receipt.text
    residents = []
    async with bench.service("checkin") as checkin:
        for i, building in enumerate(("B01", "B01", "B02", "B02")):
            body = {"name": f"住户{i}", "phone": "13800000000", "grid_id": "G1", "building_id": building,
                    "unit": "1", "room": f"10{i}", "tags": ["elderly"] if i == 0 else []}  # fmt: skip
            response = await checkin.post("/residents", json=body)
            assert response.status_code == 201, response.text
            residents.append(response.json()["resident_id"])
        for resident in residents[:3]:
            await checkin.post("/checkins", json={"resident_id": resident, "temperature_c": 36.5, "symptoms": []})
        sampling = await checkin.post(
            "/sampling/rounds",
            json={"name": "第5轮核酸", "building_ids": ["B01", "B02"],
                  "deadline": (clock.now() + timedelta(hours=6)).isoformat(), "min_completion_rate": 0.9},
        )  # fmt: skip
        assert sampling.status_code == 201, sampling.text
        await checkin.post(
            f"/sampling/rounds/{sampling.json()['round_id']}/samples", json={"resident_ids": residents[:2]}
        )
    await bench.deliver(
        "command",
        CheckInMissed(resident_id=residents[0], date=DAY, consecutive_days=1, grid_id="G1", building_id="B01",
                      tags=["elderly"]),
    )  # fmt: skip
    async with bench.service("command", "command", "cmd-duty") as command:
        (followup,) = (await command.get("/tickets", params={"kind": "followup"})).json()
        await command.post(f"/tickets/{followup['ticket_id']}/acknowledge", json={})
        await command.post(f"/tickets/{followup['ticket_id']}/resolve", json={"resolution": "已联系"})
        await command.post(f"/tickets/{followup['ticket_id']}/feedback", json={"satisfaction": 4})
        late = await command.post("/tickets", json={"category": "building_maintenance", "description": "门禁坏了",
                                                    "building_id": "B02"})  # fmt: skip
        assert late.status_code == 201
    clock.advance(hours=5)  # past the maintenance ticket's time to respond


async def test_the_screen_shows_the_services_figures(workbench, clock):
    await seed_figures(workbench, clock)
    async with workbench.browser() as staff:
        await workbench.sign_in(staff, "command", "cmd-lead")
        page = await staff.get("/screen")
    assert page.status_code == 200
    figures = json.loads(
        re.search(r'<script type="application/json" id="screen-data">(.*?)</script>', page.text, re.S).group(1)
    )
    stock = dict(zip(figures["stock"]["labels"], zip(figures["stock"]["available"], figures["stock"]["threshold"], figures["stock"]["low"], strict=True), strict=True))  # fmt: skip
    assert [label.split("@")[0] for label in stock] == ["口罩", "消毒液"]  # below its line first
    assert [v[2] for v in stock.values()] == [True, False] and figures["stock"]["below"] == 1
    assert dict(zip(figures["checkin"]["labels"], figures["checkin"]["rates"], strict=True)) == {
        "B02": 50.0,
        "B01": 100.0,
    }
    assert figures["sampling"]["name"] == "第5轮核酸" and figures["sampling"]["line"] == 90.0
    assert dict(zip(figures["sampling"]["labels"], figures["sampling"]["low"], strict=True)) == {
        "B02": True,
        "B01": False,
    }
    assert figures["demand"] is None  # no dispatch here: its panel says so, the others stand
    assert figures["key"] == {"opened": 1, "resolved": 1, "resolution_rate": 1.0} and figures["key_rate"] == 100.0
    assert figures["overdue"]["total"] == 1 and figures["overdue"]["labels"] == ["物业"]
    assert figures["kpis"]["satisfaction"]["average"] == 4
    text = re.sub(r"<script.*?</script>", "", page.text, flags=re.S)
    tiles = " ".join(re.sub(r"\s+", " ", tile) for tile in re.findall(r'<div class="tile">.*?</div>', text, re.S))
    assert "75.0%" in tiles and "4.0 / 5" in tiles and "100.0%" in tiles, tiles  # 3 of 4 checked in, satisfaction
    assert "echarts-6.1.0.min." in page.text and "http" not in re.sub(
        r'href="/|src="/|xmlns', "", text.split("<body")[0]
    )
    for sentinel in ("住户", "13800000000", "36.5"):
        assert sentinel not in text  # no name, phone or reading on a wall screen


async def test_the_screen_keeps_its_other_panels_when_a_service_does_not_answer(workbench, clock):
    await seed_figures(workbench, clock)
    del workbench.transport.transports["supplies"]  # supplies is down
    async with workbench.browser() as staff:
        await workbench.sign_in(staff, "admin", "admin-2")
        page = await staff.get("/screen")
    assert page.status_code == 200 and "第5轮核酸" in page.text
    assert page.text.count("暂无数据") == 3  # stock's tile and panel, and dispatch's panel
