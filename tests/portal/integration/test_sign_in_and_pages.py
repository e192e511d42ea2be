"""The portal as a browser drives it (forms and cookies), against the real check-in and
time-bank apps: household links, phone codes, invitations, sessions, and the pages."""

from __future__ import annotations

import re

import pytest

from common.auth import InvalidToken, Verifier
from support import bearer


def path_of(url: str) -> str:
    return url.removeprefix("http://portal")


async def sign_in_household(portal, client, household_id: str) -> None:
    response = await client.get(path_of(await portal.household_link(household_id)))
    assert response.status_code == 303 and response.headers["location"] == "/home"


async def test_a_household_link_opens_the_household_page_and_checks_in_a_member(portal):
    wang = await portal.register("王芳", "101")
    await portal.register("李强", "101")
    await portal.register("赵敏", "102")
    async with portal.browser() as phone:
        await sign_in_household(portal, phone, wang)  # a resident's id names their household
        page = await phone.get("/home")
        assert page.status_code == 200
        assert "王芳" in page.text and "李强" in page.text and "赵敏" not in page.text  # only the household
        assert "今天还有 2 人没打卡" in page.text

        checked = await phone.post(
            "/home/checkins", data={"resident_id": wang, "temperature_c": "36.5", "none": "1", "key": "k1"}
        )
        assert checked.status_code == 303 and "done=" in checked.headers["location"]
        page = await phone.get("/home")
        assert "今天还有 1 人没打卡" in page.text

    [event] = await portal.checkin.outbox("CheckInSubmitted")
    assert event["data"]["resident_id"] == wang and event["data"]["channel"] == "self"


async def test_a_check_in_for_someone_outside_the_household_is_refused_and_nothing_is_written(portal):
    wang = await portal.register("王芳", "101")
    neighbour = await portal.register("赵敏", "102")
    async with portal.browser() as phone:
        await sign_in_household(portal, phone, wang)
        response = await phone.post("/api/checkins", json={"resident_id": neighbour, "temperature_c": 36.5})
        assert response.status_code == 403
    assert await portal.checkin.outbox("CheckInSubmitted") == []


async def test_a_revoked_or_forged_code_answers_a_clear_chinese_page(portal):
    wang = await portal.register("王芳", "101")
    old = await portal.household_link(wang)
    new = await portal.household_link(wang, renew=True)
    assert old != new
    async with portal.browser() as phone:
        for url in (old, "http://portal/h/forged.code", "http://portal/h/" + "x" * 30):
            response = await phone.get(path_of(url))
            assert response.status_code == 404
            assert "二维码已失效" in response.text and "Traceback" not in response.text
            assert "firstline_session" not in response.headers.get("set-cookie", "")
        assert (await phone.get(path_of(new))).status_code == 303


async def test_household_links_are_rate_limited(portal):
    async with portal.browser() as phone:
        answers = [(await phone.get("/h/forged.code")).status_code for _ in range(25)]
    assert answers[:20] == [404] * 20 and answers[-1] == 429


async def test_a_tampered_cookie_is_no_session(portal):
    async with portal.browser() as phone:
        phone.cookies.set("firstline_session", "made-up")
        response = await phone.get("/home")
        assert response.status_code == 303 and response.headers["location"] == "/"


async def test_phone_code_sign_in_answers_the_same_whether_the_number_exists(portal):
    await portal.invite("building_lead", "lead-1", phone="13900000001", building_ids=["B01"])
    async with portal.browser() as browser:
        known = await browser.post("/signin/code", data={"phone": "13900000001"})
        unknown = await browser.post("/signin/code", data={"phone": "13900000009"})
        assert known.status_code == unknown.status_code == 200
        assert known.text == unknown.text.replace("13900000009", "13900000001")
        [sent] = portal.service.dev_outbox
        code = re.search(r"\d{6}", sent["text"]).group()
        assert sent["to"] == "13900000001"

        wrong = await browser.post(
            "/signin", data={"phone": "13900000001", "code": "000000" if code != "000000" else "111111"}
        )
        assert wrong.status_code == 401 and "验证码不对" in wrong.text
        right = await browser.post("/signin", data={"phone": "13900000001", "code": code})
        assert right.status_code == 303 and right.headers["location"] == "/lead"
        again = await browser.post("/signin", data={"phone": "13900000001", "code": code})
        assert again.status_code == 401  # a code is good once


async def test_five_wrong_codes_exhaust_the_code(portal, clock):
    await portal.invite("volunteer", "vol-1", phone="13900000002")
    async with portal.browser() as browser:
        await browser.post("/signin/code", data={"phone": "13900000002"})
        code = re.search(r"\d{6}", portal.service.dev_outbox[0]["text"]).group()
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            assert (await browser.post("/signin", data={"phone": "13900000002", "code": wrong})).status_code == 401
        exhausted = await browser.post("/signin", data={"phone": "13900000002", "code": code})
        assert exhausted.status_code == 401 and "尝试次数过多" in exhausted.text


async def test_a_code_expires_after_five_minutes(portal, clock):
    await portal.invite("volunteer", "vol-2", phone="13900000003")
    async with portal.browser() as browser:
        await browser.post("/signin/code", data={"phone": "13900000003"})
        code = re.search(r"\d{6}", portal.service.dev_outbox[0]["text"]).group()
        clock.advance(minutes=5, seconds=1)
        expired = await browser.post("/signin", data={"phone": "13900000003", "code": code})
        assert expired.status_code == 401 and "已过期" in expired.text


async def test_an_invitation_signs_in_once(portal):
    url = await portal.invite("building_lead", "lead-2", building_ids=["B01"])
    async with portal.browser() as browser:
        first = await browser.get(path_of(url))
        assert first.status_code == 303 and first.headers["location"] == "/lead"
        assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=lax" in first.headers["set-cookie"]
    async with portal.browser() as other:
        assert (await other.get(path_of(url))).status_code == 404


async def test_the_lead_checks_in_for_a_neighbour_and_sees_no_health_facts(portal):
    fever = await portal.register("王芳", "101")
    missing = await portal.register("李强", "102")
    async with portal.browser() as phone:
        await sign_in_household(portal, phone, fever)
        await phone.post("/home/checkins", data={"resident_id": fever, "temperature_c": "38.4", "none": "1"})
    async with portal.browser() as lead:
        await lead.get(path_of(await portal.invite("building_lead", "lead-3", building_ids=["B01"])))
        page = await lead.get("/lead")
        assert page.status_code == 200
        assert "需关注" in page.text and "38.4" not in page.text  # needs attention, no temperature
        assert "今天已打卡 1/2 人" in page.text
        done = await lead.post("/lead/checkins", data={"resident_id": missing, "temperature_c": "36.6", "none": "1"})
        assert done.status_code == 303 and "error" not in done.headers["location"]
        assert "今天已打卡 2/2 人" in (await lead.get("/lead")).text
    submitted = await portal.checkin.outbox("CheckInSubmitted")
    assert [e["data"]["channel"] for e in submitted] == ["self", "building_lead"]


async def test_a_lead_of_another_building_sees_nothing_of_this_one(portal):
    await portal.register("王芳", "101", building="B01")
    response = await portal.checkin.client.get(
        "/households", params={"building_id": "B01"}, headers=bearer("building_lead", "lead-9", building_ids=["B02"])
    )
    assert response.status_code == 403


async def test_signing_out_revokes_the_session_for_every_service(portal):
    wang = await portal.register("王芳", "101")
    async with portal.browser() as phone:
        await sign_in_household(portal, phone, wang)
        session = await portal.service.session(phone.cookies["firstline_session"])
        token = portal.service.token(session, "checkin", wang)
        verifier = Verifier("checkin", jwks_url="", revocations_url="http://portal/.well-known/revoked-sessions")
        async with portal.browser() as anyone:
            verifier.use_jwks((await anyone.get("/.well-known/jwks.json")).json())
            verifier.use_revocations((await anyone.get("/.well-known/revoked-sessions")).json()["session_ids"])
            assert verifier.verify(token).sub == wang
            assert (await phone.post("/signout")).status_code == 303
            assert (await phone.get("/home")).status_code == 303  # the portal: at once
            verifier.use_revocations((await anyone.get("/.well-known/revoked-sessions")).json()["session_ids"])
        with pytest.raises(InvalidToken, match="session has ended"):
            verifier.verify(token)  # a service: at its next refresh of the list (every second)


async def test_the_development_outbox_and_every_page_are_in_chinese_first_and_english_on_request(portal):
    async with portal.browser() as browser:
        assert "登录" in (await browser.get("/")).text
        switched = await browser.get("/lang/en?next=/")
        assert switched.status_code == 303
        assert "Sign in" in (await browser.get("/")).text
        assert (await browser.get("/dev/outbox")).status_code == 200


async def test_sign_ins_are_counted_by_method_and_outcome(portal):
    wang = await portal.register("王芳", "101")
    async with portal.browser() as phone:
        await sign_in_household(portal, phone, wang)
        await phone.get("/h/forged.code")
        await phone.get("/home")
        metrics = (await phone.get("/metrics")).text
    assert 'firstline_portal_sign_ins_total{method="household",outcome="ok"} 1.0' in metrics
    assert 'firstline_portal_sign_ins_total{method="household",outcome="refused"} 1.0' in metrics
    assert 'firstline_portal_service_calls_total{service="checkin",status="2xx"}' in metrics


async def test_the_qr_sheet_is_an_a4_pdf_with_chinese_fonts_for_an_admin_or_that_buildings_lead(portal):
    await portal.register("王芳", "101")
    await portal.register("李强", "102")
    async with portal.browser() as client:
        sheet = await client.get("/admin/buildings/B01/qr.pdf", headers=bearer("admin", "admin-1"))
        assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF")
        assert b"NotoSansCJK" in sheet.content  # the Chinese font is embedded
        assert (
            await client.get("/admin/buildings/B01/qr.pdf", headers=bearer("building_lead", "l", building_ids=["B01"]))
        ).status_code == 403
    async with portal.browser() as lead:
        await lead.get(path_of(await portal.invite("building_lead", "lead-7", building_ids=["B02"])))
        assert (await lead.get("/buildings/B01/qr.pdf")).status_code == 403  # another building's lead
    async with portal.browser() as lead:
        await lead.get(path_of(await portal.invite("building_lead", "lead-8", building_ids=["B01"])))
        own = await lead.get("/buildings/B01/qr.pdf")
        assert own.status_code == 200 and own.headers["content-type"] == "application/pdf"


async def test_a_reading_check_in_refuses_is_explained_on_the_page_and_nothing_is_written(portal):
    wang = await portal.register("王芳", "101")
    async with portal.browser() as phone:
        await sign_in_household(portal, phone, wang)
        refused = await phone.post("/home/checkins", data={"resident_id": wang, "temperature_c": "44.5", "none": "1"})
        assert refused.status_code == 303 and "error=checkin.reading_refused" in refused.headers["location"]
        page = await phone.get(refused.headers["location"])
        assert "体温读数不对" in page.text
        api = await phone.post("/api/checkins", json={"resident_id": wang, "temperature_c": 44.5})
        assert api.status_code == 422  # the check-in service's own answer
    assert await portal.checkin.outbox("CheckInSubmitted") == []
