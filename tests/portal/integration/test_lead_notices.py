"""A building lead sees who the community's notices have not reached: messaging's reach of
each notice, scoped by messaging to the lead's own buildings, on the lead's phone page."""

from __future__ import annotations

import itertools

import httpx
from aiokafka import ConsumerRecord

from common import envelope as ce
from common.events.checkin import ResidentRegistered
from messaging.main import create_app as messaging_app
from messaging.settings import MessagingSettings
from support import bearer

_offsets = itertools.count()


async def register(messaging, clock, resident_id: str, building: str, room: str, name: str) -> None:
    event = ResidentRegistered(resident_id=resident_id, community_id="C1", grid_id="G1", building_id=building,
                               unit="1", room=room, name=name, phone=None, tags=[])  # fmt: skip
    value, key = ce.encode(ce.wrap(event, at=clock.now())), resident_id.encode()
    record = ConsumerRecord("checkin.residents.v1", 0, next(_offsets), 0, 0, key, value, None, len(key), len(value), [])
    await messaging.state.runtime.runners[0].handle([record])


async def test_the_lead_sees_the_households_a_notice_has_not_reached(portal, tmp_path, clock):
    settings = MessagingSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/messaging.db", jobs_interval_s=0,
                                 kafka_enabled=False, start_consumers=False)  # fmt: skip
    messaging = messaging_app(settings, clock=clock)
    async with messaging.router.lifespan_context(messaging):
        portal.transport.transports["messaging"] = httpx.ASGITransport(app=messaging)
        await register(messaging, clock, "R-1", "B01", "101", "王芳")
        await register(messaging, clock, "R-2", "B01", "102", "李雷")
        await register(messaging, clock, "R-3", "B02", "101", "赵六")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=messaging), base_url="http://messaging") as api:
            sent = await api.post(
                "/notices",
                json={"headline_zh": "周六核酸检测", "body_zh": "周六8:00在南门。", "building_ids": ["B01", "B02"],
                      "channels": ["text"]},
                headers=bearer("command", "cmd-duty"),
            )  # fmt: skip
            assert sent.status_code == 201, sent.text

        async with portal.browser() as lead:
            invitation = await portal.invite("building_lead", "lead-1", building_ids=["B01"])
            await lead.get(httpx.URL(invitation).path)
            assert "/lead/notices" in (await lead.get("/lead")).text
            page = await lead.get("/lead/notices")
            assert page.status_code == 200
            assert "周六核酸检测" in page.text and "已送达 0 / 2 户" in page.text
            assert "1-101：王芳" in page.text and "1-102：李雷" in page.text
            assert "赵六" not in page.text  # another building's household: not this lead's to see

        async with portal.browser() as other:
            await other.get(httpx.URL(await portal.invite("building_lead", "lead-2", building_ids=["B03"])).path)
            page = await other.get("/lead/notices")
            assert "周六核酸检测" not in page.text and "最近没有发给本楼的通知" in page.text

        async with portal.browser() as household:
            assert (await household.get("/lead/notices")).status_code in (302, 303)  # signed out: to sign in
