"""Paper: the printable pages and their PDFs (Chromium, Noto CJK), and the screen where a
building lead keys a filled check-in sheet back in, against the real services in-process."""

from __future__ import annotations

import io
import re
import shutil
import unicodedata

import httpx
import pytest
from aiokafka import ConsumerRecord
from more_services import behind
from pypdf import PdfReader

from common import envelope as ce
from common.events.checkin import ResidentRegistered
from portal.routes.paper import row_code
from support import bearer

ADMIN = bearer("admin", "admin-1")


def path_of(url: str) -> str:
    return url.removeprefix("http://portal")


async def signed_in(portal, client, role: str, sub: str, **scope) -> None:
    response = await client.get(path_of(await portal.invite(role, sub, **scope)))
    assert response.status_code == 303, response.text


def pdf_text(body: bytes) -> str:
    """The PDF's text as a reader would copy it (NFKC: the CJK fonts map some glyphs to Kangxi radicals)."""
    return unicodedata.normalize("NFKC", "".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages))


def tick(form: dict, resident_id: str, temperature: str, *symptoms: str) -> dict:
    form[f"tick.{resident_id}"] = "1"
    form[f"t.{resident_id}"] = temperature
    if symptoms:
        form[f"s.{resident_id}"] = list(symptoms)
    return form


async def test_a_lead_prints_the_sheet_and_keys_it_back_in_and_the_sweep_finds_the_rest(portal):
    wang = await portal.register("王芳", "101")
    li = await portal.register("李强", "101")
    zhao = await portal.register("赵敏", "102")
    stranger = await portal.register("孙悦", "201", building="B02")
    async with portal.browser() as lead:
        await signed_in(portal, lead, "building_lead", "lead-1", building_ids=["B01"])
        sheet = await lead.get("/paper/buildings/B01/checkins")
        assert sheet.status_code == 200
        assert "B01栋 健康打卡登记表 2026-11-21" in sheet.text and "@page" in sheet.text and "A4" in sheet.text
        assert all(name in sheet.text for name in ("王芳", "李强", "赵敏")) and "孙悦" not in sheet.text
        code = row_code(portal.service.secret, "B01", "2026-11-21", wang)
        assert re.fullmatch(r"[A-Z2-7]{4}", code) and code in sheet.text
        assert row_code(portal.service.secret, "B01", "2026-11-22", wang) != code  # another day's sheet

        entry = await lead.get("/paper/buildings/B01/checkins/entry")
        assert entry.status_code == 200 and code in entry.text and f'name="tick.{zhao}"' in entry.text

        no_temperature = await lead.post(
            "/paper/buildings/B01/checkins/entry", data={"date": "2026-11-21", f"tick.{wang}": "1"}
        )
        assert no_temperature.status_code == 422 and "没写体温" in no_temperature.text
        assert await portal.checkin.outbox("CheckInSubmitted") == []  # nothing sent while a row is wrong

        form = tick(tick({"date": "2026-11-21"}, wang, "36.6"), li, "37.8", "cough")
        keyed = await lead.post("/paper/buildings/B01/checkins/entry", data=form)
        assert keyed.status_code == 200 and "已录入 2 人的打卡" in keyed.text
        again = await lead.post("/paper/buildings/B01/checkins/entry", data=form)  # the same sheet sent twice
        assert again.status_code == 200

    submitted = await portal.checkin.outbox("CheckInSubmitted")
    assert sorted(e["data"]["resident_id"] for e in submitted) == sorted([wang, li])  # once each
    assert {e["data"]["channel"] for e in submitted} == {"building_lead"}
    [anomaly] = await portal.checkin.outbox("HealthAnomalyReported")
    assert anomaly["data"]["resident_id"] == li and anomaly["data"]["symptoms"] == ["cough"]

    portal.checkin.clock.advance(hours=2)  # past the 10:00 cutoff
    swept = await portal.checkin.client.post("/sweeps", json={"date": "2026-11-21"}, headers=ADMIN)
    assert swept.status_code == 200, swept.text
    missed = {e["data"]["resident_id"] for e in await portal.checkin.outbox("CheckInMissed")}
    assert missed == {zhao, stranger} and {zhao} == missed - {stranger}


async def test_sheets_are_refused_to_roles_without_them_and_other_buildings(portal):
    await portal.register("王芳", "101")
    async with portal.browser() as volunteer:
        await signed_in(portal, volunteer, "volunteer", "vol-1")
        refused = await volunteer.get("/paper/buildings/B01/checkins")
        assert refused.status_code == 403 and "没有打印这份材料的权限" in refused.text
    async with portal.browser() as other_lead:
        await signed_in(portal, other_lead, "building_lead", "lead-2", building_ids=["B02"])
        assert (await other_lead.get("/paper/buildings/B01/checkins")).status_code in (403, 404)
        entry = await other_lead.post(
            "/paper/buildings/B01/checkins/entry", data={"date": "2026-11-21"}, headers={"origin": "http://evil"}
        )
        assert entry.status_code == 403
    async with portal.browser() as stranger:
        assert (await stranger.get("/paper/agenda")).status_code == 303  # sign in first


async def learn(dispatch_app, clock, resident_id: str, building: str, unit: str, room: str, name: str) -> None:
    """Dispatch learns a resident from check-in's event, handed to its consumer as Kafka would."""
    event = ResidentRegistered(
        resident_id=resident_id, community_id="C1", grid_id="G1", building_id=building, tags=["elderly"],
        name=name, phone="13800000000", unit=unit, room=room, lat=31.2320, lon=121.4750,
    )  # fmt: skip
    value = ce.encode(ce.wrap(event, at=clock.now()))
    record = ConsumerRecord("checkin.residents.v1", 0, 1, 0, 0, resident_id.encode(), value, None, 0, len(value), ())
    await dispatch_app.state.runtime.runners[0].handle([record])


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's Chromium prints the PDFs: make browser-install")
async def test_every_sheet_prints_to_a_pdf_with_its_chinese_text(portal, tmp_path, clock):
    wang = await portal.register("王芳", "101")
    await portal.register("李强", "102")
    async with behind(portal, tmp_path, clock) as services:
        # a run for a volunteer: the resident is known to dispatch, a request raised, a slot planned
        await learn(services["apps"]["dispatch"], clock, wang, "B01", "1", "101", "王芳")
        volunteer = await services["dispatch"].post(
            "/volunteers",
            json={"name": "志愿者张伟", "group": "errands", "lat": 31.2310, "lon": 121.4740, "capacity": 5, "phone": "13900000001"},
            headers=ADMIN,
        )  # fmt: skip
        assert volunteer.status_code == 201, volunteer.text
        raised = await services["dispatch"].post(
            "/requests", json={"resident_id": wang, "category": "groceries", "details": "大米一袋"}, headers=ADMIN
        )
        assert raised.status_code == 201, raised.text
        plan = (await services["dispatch"].post("/runs/plan", json={}, headers=ADMIN)).json()
        [run] = plan["runs"]
        # hours for the recognition board
        timebank = portal.transport.transports["timebank"]
        async with httpx.AsyncClient(transport=timebank, base_url="http://timebank") as bank:
            assert (
                await bank.post("/members", json={"member_id": wang, "name": "王芳", "kind": "resident"}, headers=ADMIN)
            ).status_code == 201
            credited = await bank.post(
                "/credits",
                json={"member_id": wang, "hours": 3, "activity": "patrol", "reason": "夜间巡逻"},
                headers=ADMIN,
            )
            assert credited.status_code == 201, credited.text

        clock.advance(hours=2)  # past the cutoff: nobody checked in, so the follow-up list has them
        await portal.checkin.client.post("/sweeps", json={"date": "2026-11-21"}, headers=ADMIN)

        expected = {
            ("command", "/paper/buildings/B01/checkins.pdf"): ["健康打卡登记表", "王芳", "李强", "体温", "咳嗽"],
            ("grid_worker", "/paper/followups.pdf?date=2026-11-21"): ["今日回访名单", "王芳", "连续", "已联系"],
            ("dispatcher", f"/paper/runs/{run['run_id']}.pdf"): [
                "配送路线单",
                "志愿者张伟",
                "王芳",
                "大米一袋",
                "已送达",
            ],
            ("command", "/paper/buildings/B01/recognition.pdf"): ["光荣榜", "王芳", "1-101"],
        }
        for (role, path), texts in expected.items():
            async with portal.browser() as staff:
                await signed_in(portal, staff, role, f"{role}-1", grid_ids=["G1"])
                page = await staff.get(path.replace(".pdf", ""))
                assert page.status_code == 200, (path, page.text[:500])
                printed = await staff.get(path)
                assert printed.status_code == 200, (path, printed.text[:500])
                assert printed.headers["content-type"] == "application/pdf" and printed.content.startswith(b"%PDF")
                text = pdf_text(printed.content)
                for wanted in texts:
                    assert wanted in text, (path, wanted, text[:400])
                assert b"NotoSansCJK" in printed.content or b"Noto" in printed.content  # the font is embedded
