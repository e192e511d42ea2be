"""The command center's workbench as a browser drives it (forms and cookies), against the
real check-in and command apps in-process: landing on the board, the board's columns and
filters, a ticket's actions, the meeting's decision as a ticket, and the heat map."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import ConsumerRecord

from checkin.main import create_app as checkin_app
from checkin.settings import CheckinSettings
from command.main import create_app as command_app
from command.settings import CommandSettings
from common import envelope as ce
from common.clock import ManualClock
from common.events.base import Event
from common.events.checkin import HealthAnomalyReported, SamplingLagging
from common.events.dispatch import DemandSurge
from portal.main import create_app as portal_app
from portal.settings import PortalSettings
from support import bearer

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
STAFF = bearer("command", "cmd-duty")
_offsets = itertools.count()


class RoutingTransport(httpx.AsyncBaseTransport):
    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


class Workbench:
    def __init__(self, portal, command, checkin, clock: ManualClock) -> None:
        self.portal, self.command_app, self.checkin_app, self.clock = portal, command, checkin, clock

    def client(self, app=None, base: str = "http://portal") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app or self.portal), base_url=base)

    async def command(self, method: str, path: str, **kwargs) -> httpx.Response:
        async with self.client(self.command_app, "http://command") as client:
            return await client.request(method, path, headers=STAFF, **kwargs)

    async def report(self, **body) -> dict:
        response = await self.command("POST", "/tickets", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def deliver(self, *events: Event) -> None:
        """Hand events to command's consumer as Kafka records, as the broker would."""
        records = []
        for event in events:
            value = ce.encode(ce.wrap(event, at=self.clock.now()))
            records.append(ConsumerRecord(event.topic, 0, next(_offsets), 0, 0, b"k", value, None, 1, len(value), []))
        await self.command_app.state.runtime.runners[0].handle(records)

    async def register(self, name: str, building: str, room: str, lat: float, lon: float) -> str:
        async with self.client(self.checkin_app, "http://checkin") as client:
            body = {"name": name, "phone": "13800000000", "grid_id": "G1", "building_id": building, "unit": "1",
                    "room": room, "lat": lat, "lon": lon}  # fmt: skip
            response = await client.post("/residents", json=body, headers=bearer("admin", "admin-1"))
        assert response.status_code == 201, response.text
        return response.json()["resident_id"]

    @asynccontextmanager
    async def signed_in(
        self, role: str = "command", sub: str = "cmd-duty", **scopes
    ) -> AsyncIterator[httpx.AsyncClient]:
        async with self.client() as admin:
            response = await admin.post(
                "/admin/invitations", json={"role": role, "sub": sub, **scopes}, headers=bearer("admin", "admin-1")
            )
        assert response.status_code == 201, response.text
        async with self.client() as browser:
            landed = await browser.get(response.json()["url"].removeprefix("http://portal"))
            assert landed.status_code == 303, landed.text
            browser.landing = landed.headers["location"]
            yield browser


@pytest.fixture
async def bench(tmp_path, database_url) -> AsyncIterator[Workbench]:
    clock = ManualClock(START)
    quiet = dict(jobs_interval_s=0, kafka_enabled=False)
    checkin = checkin_app(
        CheckinSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/checkin.db", **quiet), clock=clock
    )
    command = command_app(
        CommandSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/command.db", start_consumers=False, **quiet),
        clock=clock,
    )
    portal = portal_app(
        PortalSettings(
            database_url=database_url,
            public_url="http://portal",
            checkin_url="http://checkin",
            command_url="http://command",
            jobs_interval_s=0,
            live_updates=False,  # no broker here: tests/portal/browser/test_board_desktop.py hears the live board
        ),
        clock=clock,
        transport=RoutingTransport({"checkin": checkin, "command": command}),
    )
    async with AsyncExitStack() as stack:
        for app in (checkin, command, portal):
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield Workbench(portal, command, checkin, clock)


async def test_command_staff_land_on_the_board_by_stage_with_overdue_in_red_and_filters(bench):
    leak = await bench.report(category="complaint", description="垃圾三天没清运", building_id="B01")
    fresh = await bench.report(category="building_maintenance", description="B02 电梯停运", building_id="B02")
    bench.clock.advance(hours=30)  # the complaint's deadlines pass; the lift's too
    newer = await bench.report(category="complaint", description="门口排队太乱", building_id="B03")
    async with bench.signed_in() as browser:
        assert browser.landing == "/board"
        page = await browser.get("/board")
        assert page.status_code == 200
        html = page.text
        assert "工单看板" in html and "新发现" in html and "处置中" in html
        assert all(t["ticket_id"] in html for t in (leak, fresh, newer))
        late = re.search(rf'<li class="ticket-card overdue[^"]*" data-ticket="{leak["ticket_id"]}"', html)
        assert late, "an overdue ticket is marked"
        assert f'class="ticket-card priority-normal" data-ticket="{newer["ticket_id"]}"' in html  # not overdue
        assert "办结逾期" in html or "响应逾期" in html

        only_property = (await browser.get("/board", params={"department": "property"})).text
        assert fresh["ticket_id"] in only_property and leak["ticket_id"] not in only_property
        overdue_only = (await browser.get("/board/columns", params={"overdue": "true"})).text
        assert leak["ticket_id"] in overdue_only and newer["ticket_id"] not in overdue_only
        mine = (await browser.get("/board", params={"owner": "property-duty"})).text
        assert fresh["ticket_id"] in mine and newer["ticket_id"] not in mine

        english = await browser.get("/lang/en", params={"next": "/board"})
        assert english.status_code in (302, 303, 307)
        assert "Ticket board" in (await browser.get("/board")).text


async def test_a_ticket_page_acknowledges_escalates_reassigns_and_resolves_through_command(bench):
    ticket = await bench.report(category="complaint", description="楼道灯坏了一周", building_id="B01")
    tid = ticket["ticket_id"]
    assert ticket["owner"] == "cmd-duty"
    async with bench.signed_in() as browser:
        page = (await browser.get(f"/board/tickets/{tid}")).text
        assert "楼道灯坏了一周" in page and "开单" in page and "上报给 指挥长 Zhao" in page

        refused = await browser.post(
            f"/board/tickets/{tid}/acknowledge", data={"note": "x"}, headers={"Origin": "http://evil.example"}
        )
        assert refused.status_code == 403
        assert (await bench.command("GET", f"/tickets/{tid}")).json()["stage"] == "discovered"

        done = await browser.post(f"/board/tickets/{tid}/acknowledge", data={"note": "已联系物业"})
        assert done.status_code == 303 and done.headers["location"] == f"/board/tickets/{tid}?done=acknowledge"
        seen = (await bench.command("GET", f"/tickets/{tid}")).json()
        assert seen["stage"] == "responding" and seen["history"][-1]["note"] == "已联系物业"

        up = await browser.post(f"/board/tickets/{tid}/escalate", data={"note": "两次未修"})
        assert up.headers["location"].endswith("done=escalate")
        seen = (await bench.command("GET", f"/tickets/{tid}")).json()
        assert seen["owner"] == "cmd-lead" and seen["history"][-1]["note"] == "升级 escalated: 两次未修"

        nobody = await browser.post(f"/board/tickets/{tid}/reassign", data={"owner": ""})
        assert "error=board.error.owner_needed" in nobody.headers["location"]
        moved = await browser.post(f"/board/tickets/{tid}/reassign", data={"owner": "grid-lead", "note": "网格处理"})
        assert moved.headers["location"].endswith("done=reassign")
        assert (await bench.command("GET", f"/tickets/{tid}")).json()["owner"] == "grid-lead"

        noted = await browser.post(f"/board/tickets/{tid}/note", data={"note": "居民又来电话催"})
        assert noted.headers["location"].endswith("done=note")
        seen = (await bench.command("GET", f"/tickets/{tid}")).json()
        assert (seen["stage"], seen["history"][-1]["action"], seen["history"][-1]["note"]) == (
            "responding", "note", "居民又来电话催",
        )  # fmt: skip
        assert (
            "error=board.error.note_needed"
            in (await browser.post(f"/board/tickets/{tid}/note", data={"note": ""})).headers["location"]
        )

        empty = await browser.post(f"/board/tickets/{tid}/resolve", data={"note": " "})
        assert "error=board.error.resolution_needed" in empty.headers["location"]
        resolved = await browser.post(f"/board/tickets/{tid}/resolve", data={"note": "已换灯泡"})
        assert resolved.headers["location"].endswith("done=resolve")
        seen = (await bench.command("GET", f"/tickets/{tid}")).json()
        assert (seen["stage"], seen["resolution"]) == ("resolved", "已换灯泡")

        again = await browser.post(f"/board/tickets/{tid}/acknowledge", data={})
        assert again.headers["location"].endswith("error=board.error.stage")  # command's 409, said on the page
        assert "工单状态已经变化" in (await browser.get(again.headers["location"])).text
        assert "点这里" not in (await browser.get(f"/board/tickets/{tid}?error=点这里")).text  # no text from the URL
        page = (await browser.get(f"/board/tickets/{tid}")).text
        assert "已换灯泡" in page and "已解决待回访" in page and "转派" in page
        assert (await browser.get("/board/tickets/T-nosuch")).status_code == 404
        assert (await browser.post(f"/board/tickets/{tid}/delete", data={})).status_code == 404


async def test_a_meeting_decision_is_a_ticket_with_owner_and_deadline_in_one_step(bench):
    overdue = await bench.report(category="complaint", description="物资发放排队", building_id="B01")
    bench.clock.advance(hours=30)
    async with bench.signed_in() as browser:
        page = (await browser.get("/board/meeting")).text
        for section in ("逾期工单（1）", "上次例会", "在办工单（按部门、负责人）", "今日数据", "会上决定"):
            assert section in page, section
        assert overdue["ticket_id"] in page
        css = re.search(r'href="(/static/board\.[0-9a-f]+\.css)"', page).group(1)
        assert "@page{size:A4" in (await browser.get(css)).text

        missing = await browser.post("/board/meeting/decisions", data={"description": "加派人手", "owner": ""})
        assert "error=board.error.decision_needed" in missing.headers["location"]
        nobody = await browser.post(
            "/board/meeting/decisions",
            data={"description": "加派人手", "owner": "nobody", "deadline": "2030-01-01T18:00"},
        )
        assert nobody.headers["location"].endswith("error=board.error.invalid")  # command's 422: not in the directory
        local = ZoneInfo("Asia/Shanghai")
        deadline = (bench.clock.now() + timedelta(days=1)).astimezone(local).replace(second=0, microsecond=0)
        recorded = await browser.post(
            "/board/meeting/decisions",
            data={"description": "B05 采样滞后：派人上门采样", "owner": "gw-G2",
                  "deadline": deadline.strftime("%Y-%m-%dT%H:%M"), "priority": "high", "building_id": "B05"},
        )  # fmt: skip
        assert recorded.status_code == 303, recorded.text
        ticket_id = re.search(r"done=(T-[0-9a-f]+)", recorded.headers["location"]).group(1)
        ticket = (await bench.command("GET", f"/tickets/{ticket_id}")).json()
        assert (ticket["kind"], ticket["owner"], ticket["priority"], ticket["building_id"]) == (
            "meeting_decision", "gw-G2", "high", "B05",
        )  # fmt: skip
        assert datetime.fromisoformat(ticket["resolve_by"]).astimezone(UTC) == deadline.astimezone(UTC)
        assert "决定已记录为工单" in (await browser.get(recorded.headers["location"])).text


async def test_the_heat_map_draws_buildings_cells_and_the_decisions_the_figures_suggest(bench):
    for building, lat, lon in (("B01", 31.2301, 121.4731), ("B02", 31.2312, 121.4745), ("B05", 31.2295, 121.4752)):
        await bench.register("住户" + building, building, "101", lat, lon)
    now = bench.clock.now()
    fevers = [  # five: command shows a health kind's cell from k = 5 (COMMAND_HEATMAP_MIN_COUNT)
        HealthAnomalyReported(resident_id=f"R9{n}", date=date(2026, 11, 21), temperature_c=38.6, grid_id="G1",
                              building_id="B01", fever=True, lat=31.2301, lon=121.4731)
        for n in range(5)
    ]  # fmt: skip
    await bench.deliver(
        *fevers,
        DemandSurge(category="groceries", count=30, baseline=10, window_start=now - timedelta(hours=1),
                    window_end=now, suggested_action="arrange bulk supply"),
        SamplingLagging(round_id="R-1", building_id="B05", completion_rate=0.6, grid_id="G1", sampled=6, expected=10),
    )  # fmt: skip
    async with bench.signed_in() as browser:
        page = await browser.get("/board/heatmap")
        assert page.status_code == 200
        html = page.text
        assert "「买菜、生活用品」求助是平时的 3.0 倍 → 安排集中供应" in html
        assert "B05 核酸采样完成 60% → 派人上门采样" in html
        shape = json.loads(
            re.search(r'<script type="application/json" id="map-data">(.*?)</script>', html, re.S).group(1)
        )
        assert {b["building_id"] for b in shape["buildings"]} == {"B01", "B02", "B05"}
        assert len(shape["outline"]) >= 3
        assert [c["properties"]["counts"] for c in shape["cells"]] == [{"fever": 5}]
        assert len(shape["cells"][0]["geometry"]["coordinates"][0]) == 7  # a hexagon, closed
        assert re.search(r'src="/static/leaflet-1\.9\.4\.[0-9a-f]+\.js"', html)
        assert "http://" not in re.sub(r"https?://(www\.w3\.org|portal)", "", html.split("<main", 1)[1])

        complaints = (await browser.get("/board/heatmap", params={"kind": "complaint", "window": "7d"})).text
        assert "这段时间没有问题" in complaints
        draft = re.search(r'href="/board/meeting\?([^"#]+)#decisions"', html).group(1)
        meeting = (await browser.get(f"/board/meeting?{draft.replace('&amp;', '&')}")).text
        assert "安排集中供应" in meeting.split('id="d-text"')[1].split("</textarea>")[0]

    bench.clock.advance(days=2)  # out of the 24-hour window, still in the week
    async with bench.signed_in() as browser:
        assert "这段时间没有问题" in (await browser.get("/board/heatmap")).text
        week = (await browser.get("/board/heatmap", params={"window": "7d"})).text
        assert '"counts": {"fever": 5}' in week


async def test_only_command_staff_reach_the_workbench(bench):
    async with bench.client() as anonymous:
        assert (await anonymous.get("/board")).headers["location"] == "/"
        assert (await anonymous.get("/board/events")).status_code == 401
    async with bench.signed_in("building_lead", "lead-1", building_ids=["B01"]) as lead:
        for path in ("/board", "/board/meeting", "/board/heatmap", "/board/tickets/T-1"):
            page = await lead.get(path)
            assert page.status_code == 403 and "没有权限" in page.text, path
        assert (
            await lead.post("/board/meeting/decisions", data={"description": "x", "owner": "gw-G1"})
        ).status_code == 403
        assert (await lead.get("/board/events")).status_code == 403
    async with bench.signed_in() as staff:
        assert (await staff.get("/board/events")).status_code == 204  # live updates off here: the script stops
