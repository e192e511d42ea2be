"""The grid worker's page against the real check-in, command and time-bank apps in-process;
what one app commits to its outbox is handed to the others' consumers as Kafka would
(check-in's missed and fever events open command's tickets)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import ConsumerRecord
from sqlmodel import select

from checkin.main import create_app as checkin_app
from checkin.settings import CheckinSettings
from command.main import create_app as command_app
from command.settings import CommandSettings
from common.clock import ManualClock
from common.outbox import OutboxMessage
from common.topics import CONSUMES
from portal.main import create_app as portal_app
from portal.settings import PortalSettings
from support import bearer
from timebank.main import create_app as timebank_app
from timebank.settings import TimebankSettings

START = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, before the check-in cutoff
DEPOT = (31.2300, 121.4737)
ADMIN = bearer("admin", "admin-1")
_offsets = itertools.count()


class Routing(httpx.AsyncBaseTransport):
    """Each request to the app named by its host (http://checkin/... -> checkin)."""

    def __init__(self, apps: dict[str, object]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no service at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


class Community:
    """Four services and the portal, in-process; `relay()` plays the broker between them."""

    def __init__(self, apps: dict[str, object], clock: ManualClock) -> None:
        self.apps = apps
        self.clock = clock
        self.sent: dict[str, int] = {}
        self.http = httpx.AsyncClient(transport=Routing(apps), timeout=30)

    def portal(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.apps["portal"]), base_url="http://portal", follow_redirects=False
        )

    async def call(self, service: str, method: str, path: str, headers=ADMIN, **kwargs) -> dict | list:
        response = await self.http.request(method, f"http://{service}{path}", headers=headers, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    async def relay(self) -> None:
        """Every event committed since the last relay, to every consumer that reads its topic
        (each consumer keeps what it trusts and ignores the rest), until nothing new is left."""
        readers = {
            topic: [r for r, topics in CONSUMES.items() if topic in topics]
            for topic in {t for ts in CONSUMES.values() for t in ts}
        }
        moved = True
        while moved:
            moved = False
            for source in (s for s in ("checkin", "dispatch", "timebank", "command") if s in self.apps):
                runtime = self.apps[source].state.runtime
                async with runtime.db.session() as session:
                    rows = (
                        (
                            await session.execute(
                                select(OutboxMessage)
                                .where(OutboxMessage.seq > self.sent.get(source, 0))
                                .order_by(OutboxMessage.seq)
                            )
                        )
                        .scalars()
                        .all()
                    )
                for row in rows:
                    self.sent[source] = row.seq
                    moved = True
                    for reader in (r for r in readers.get(row.topic, ()) if r in self.apps):
                        value, key = row.value.encode(), row.key.encode()
                        record = ConsumerRecord(
                            row.topic, 0, next(_offsets), 0, 0, key, value, None, len(key), len(value), []
                        )
                        await self.apps[reader].state.runtime.runners[0].handle([record])

    async def check_in(self, resident_id: str, temperature_c: float, symptoms=()) -> None:
        body = {"resident_id": resident_id, "temperature_c": temperature_c, "symptoms": list(symptoms)}
        await self.call("checkin", "POST", "/checkins", json=body)

    async def missed_today(self, *residents: str) -> None:
        """Registered at 08:00, swept after the 10:00 cutoff: missed today."""
        self.clock.advance(hours=3)
        await self.call("checkin", "POST", "/sweeps", json={"date": "2026-11-20"})
        await self.relay()

    async def register(self, name: str, room: str, grid: str = "G1", tags=(), lat=31.2310, lon=121.4750) -> str:
        body = {
            "name": name,
            "phone": "13800000000",
            "grid_id": grid,
            "building_id": "B01",
            "unit": "1",
            "room": room,
            "tags": list(tags),
            "lat": lat,
            "lon": lon,
        }
        return (await self.call("checkin", "POST", "/residents", json=body))["resident_id"]

    async def invite(self, role: str, sub: str, **scopes) -> str:
        async with self.portal() as client:
            response = await client.post("/admin/invitations", json={"role": role, "sub": sub, **scopes}, headers=ADMIN)
        assert response.status_code == 201, response.text
        return response.json()["url"].removeprefix("http://portal")


# Command and dispatch each keep a `known_resident` table under the same name, so one process
# imports one of them: here command (dispatch is away, as the page shows); the volunteer's
# pages and the requests a call raises are tested against the running stack (tests/portal/browser).
WITH_COMMAND = ("checkin", "command", "timebank")


@pytest.fixture
async def community(tmp_path, request) -> AsyncIterator[Community]:
    clock = ManualClock(START)
    quiet = dict(jobs_interval_s=0, kafka_enabled=False, start_consumers=False)
    db = lambda name: f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
    makers = {
        "checkin": lambda: checkin_app(CheckinSettings(database_url=db("checkin"), **quiet), clock=clock),
        "command": lambda: command_app(CommandSettings(database_url=db("command"), **quiet), clock=clock),
        "timebank": lambda: timebank_app(TimebankSettings(database_url=db("timebank"), **quiet), clock=clock),
    }
    apps: dict[str, object] = {name: makers[name]() for name in request.param}
    apps["portal"] = portal_app(
        PortalSettings(
            database_url=db("portal"),
            public_url="http://portal",
            **{f"{name}_url": f"http://{name}" for name in ("checkin", "supplies", "dispatch", "timebank", "command")},
            jobs_interval_s=0,
            live_updates=False,
        ),
        clock=clock,
        transport=Routing(apps),
    )
    async with AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        community = Community(apps, clock)
        stack.push_async_callback(community.http.aclose)
        yield community


@asynccontextmanager
async def signed_in(community: Community, role: str, sub: str, **scopes) -> AsyncIterator[httpx.AsyncClient]:
    """A phone that opened the person's invitation link (its cookie kept); `landing` is where it went."""
    async with community.portal() as client:
        landing = await client.get(await community.invite(role, sub, **scopes))
        assert landing.status_code == 303, landing.text
        client.landing = landing.headers["location"]
        yield client


# -- the grid worker ----------------------------------------------------------------------


@pytest.mark.parametrize("community", [WITH_COMMAND], indirect=True)
async def test_the_grid_worker_lands_on_the_list_in_checkins_order_and_records_a_call(community):
    missed_once = await community.register("王芳", "101")
    await community.register("李强", "102", tags=["elderly", "living_alone"])
    fever = await community.register("赵敏", "103")
    await community.register("孙悦", "104", grid="G2")  # another grid: not on this list
    for resident in (missed_once, fever):  # 李强 misses yesterday and today, 王芳 today
        await community.check_in(resident, 36.5)
    community.clock.advance(hours=3)
    await community.call("checkin", "POST", "/sweeps", json={"date": "2026-11-20"})
    community.clock.advance(hours=21)  # the next morning, 08:00
    await community.check_in(fever, 38.2, ["cough"])
    community.clock.advance(hours=3)
    await community.call("checkin", "POST", "/sweeps", json={"date": "2026-11-21"})
    await community.relay()

    async with signed_in(community, "grid_worker", "gw-G1", grid_ids=["G1"]) as worker:
        assert worker.landing == "/grid"
        page = (await worker.get("/grid")).text
        order = [page.index(name) for name in ("赵敏", "李强", "王芳")]
        assert order == sorted(order), "fever first, then most days missed"
        assert "孙悦" not in page
        assert "咳嗽" in page  # the worker may see their residents' symptoms
        assert "最近体温 38.2℃" in page and "连续 2 天没打卡" in page and "tel:13800000000" in page
        assert "今天要联系 3 人，已处理 0 人" in page
        assert "网格今天已打卡 1/3 人（33%）" in page
        assert "体温到 37.3℃ 以上" in page  # the fever's conversation explains the policy
        assert "您一个人在家" in page  # 李强 lives alone

        done = await worker.post(f"/grid/outcome/{missed_once}", data={"outcome": "fine"})
        assert done.status_code == 303 and "done=fine" in done.headers["location"]
        page = (await worker.get("/grid")).text
        assert "已处理 1 人" in page

    [ticket] = [
        t
        for t in await community.call("command", "GET", "/tickets", params={"stage": "open"})
        if t["resident_id"] == missed_once
    ]
    assert ticket["kind"] == "followup" and ticket["stage"] == "resolved"
    assert ticket["resolution"] == "网格员已电话联系，情况正常。" and ticket["acknowledged_by"] == "gw-G1"


@pytest.mark.parametrize("community", [WITH_COMMAND], indirect=True)
async def test_not_reached_acknowledges_and_another_difficulty_becomes_a_grid_ticket(community):
    resident = await community.register("陈静", "201")
    await community.missed_today(resident)
    async with signed_in(community, "grid_worker", "gw-G1", grid_ids=["G1"]) as worker:
        page = (await worker.get("/grid")).text
        assert "调度暂时连不上" in page and "陈静" in page  # dispatch away: the list still serves

        retry = await worker.post(f"/grid/outcome/{resident}", data={"outcome": "retry"})
        assert "done=retry" in retry.headers["location"]
        [ticket] = await community.call("command", "GET", "/tickets", params={"stage": "open"})
        assert ticket["stage"] == "responding" and ticket["resolved_at"] is None
        assert "跟进中" in (await worker.get("/grid")).text

        refused = await worker.post(f"/grid/outcome/{resident}", data={"outcome": "help"})
        assert "error=grid.help_needed" in refused.headers["location"]  # what help? nothing is done
        assert (await community.call("command", "GET", f"/tickets/{ticket['ticket_id']}"))["stage"] == "responding"

        helped = await worker.post(
            f"/grid/outcome/{resident}", data={"outcome": "help", "category": "other", "details": "孩子网课没有电脑"}
        )
        assert "done=help" in helped.headers["location"]
    tickets = {t["kind"]: t for t in await community.call("command", "GET", "/tickets", params={"stage": "open"})}
    assert tickets["followup"]["stage"] == "resolved" and "已申请其他困难" in tickets["followup"]["resolution"]
    need = tickets["isolation_difficulty"]
    assert need["resident_id"] == resident and need["description"] == "孩子网课没有电脑" and need["owner"] == "gw-G1"


@pytest.mark.parametrize("community", [WITH_COMMAND], indirect=True)
async def test_an_unknown_outcome_and_other_roles_are_refused(community):
    resident = await community.register("陈静", "201")
    async with signed_in(community, "grid_worker", "gw-G1", grid_ids=["G1"]) as worker:
        bad = await worker.post(f"/grid/outcome/{resident}", data={"outcome": "maybe"})
        assert "error=grid.outcome_needed" in bad.headers["location"]
        odd = await worker.post("/grid/outcome/R%2525d", data={"outcome": "maybe"})  # an id with a % in it
        assert odd.status_code == 303 and odd.headers["location"].endswith("#r-R%2525d")
        assert (await worker.get("/volunteer")).status_code == 303  # not a volunteer: back to sign in
    async with signed_in(community, "building_lead", "lead-1", building_ids=["B01"]) as lead:
        assert (await lead.get("/grid")).status_code == 303
        assert (await lead.post(f"/grid/outcome/{resident}", data={"outcome": "fine"})).status_code == 303
