"""Notices (宣传) through messaging on SQLite and PostgreSQL with a real local gateway: a
staff member's notice reaches the residents of the buildings, grids and tags it names, by
text and voice, and prints as an A4 poster; each household counts as reached once a
member's message is delivered (the gateway's signed receipt) or replied to, and a
building's lead sees their own building's households not reached, and no other's."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from test_replies import invited

from common.events.checkin import ResidentRegistered
from conftest import SECRET
from messaging.gateway import sign
from support import unique


async def registered(messaging, building: str, unit: str, room: str, phone: str | None, tags=(), household=None) -> str:
    resident = unique("R")
    await messaging.deliver(ResidentRegistered(resident_id=resident, community_id="C1", grid_id="G1", building_id=building,
                                               unit=unit, room=room, name=f"住户{room}", phone=phone, tags=list(tags),
                                               household_id=household))  # fmt: skip
    return resident


async def receipt(messaging, channel: str, message_id: str, status: str = "delivered", secret: str = SECRET):
    body = json.dumps({"message_id": message_id, "status": status}).encode()
    stamp, hook = int(datetime.now(UTC).timestamp()), unique("rcpt")
    headers = {"content-type": "application/json", "webhook-id": hook, "webhook-timestamp": str(stamp),
               "webhook-signature": sign(secret, hook, stamp, body)}  # fmt: skip
    return await messaging.client.post(f"/receipts/{channel}", content=body, headers=headers)


async def test_a_notice_reaches_households_and_the_lead_sees_who_it_has_not(messaging):
    building, other_building = unique("B"), unique("B")
    wang_1 = await registered(messaging, building, "1", "101", "13800000501")
    wang_2 = await registered(messaging, building, "1", "101", "13800000502", tags=("elderly",))
    li = await registered(messaging, building, "1", "102", "13800000503")
    zhao = await registered(messaging, building, "2", "201", None)  # no phone: the notice is on their page only
    elsewhere = await registered(messaging, other_building, "1", "101", "13800000504")

    sent = await messaging.client.post(
        "/notices",
        json={"headline_zh": "周六核酸检测", "body_zh": "周六8:00–11:00在小区南门，请带身份证。", "headline_en": "PCR tests on Saturday",
              "building_ids": [building], "channels": ["text", "voice"]},
        headers=messaging.staff,
    )  # fmt: skip
    assert sent.status_code == 201, sent.text
    notice = sent.json()
    assert notice["recipients"] == 4 and notice["households"] == 3
    await messaging.runtime.run_job("messages-send")

    # By text and by voice to each resident with a phone, the page for the one without; none elsewhere.
    assert sorted(c.channel for c in messaging.gateway.to(wang_1, "notice")) == ["sms", "voice"]
    assert "周六核酸检测" in messaging.gateway.to(li, "notice")[0].body["text"]
    assert not messaging.gateway.to(zhao) and not messaging.gateway.to(elsewhere)
    [on_page] = await messaging.messages(recipient_id=zhao)
    assert on_page.channel == "page" and on_page.notice_id == notice["notice_id"]

    lead = messaging.as_("building_lead", "lead-1", building_ids=[building])
    reach = (await messaging.client.get(f"/notices/{notice['notice_id']}/reach", headers=lead)).json()
    assert reach["households"] == 3 and reach["reached"] == 0  # accepted by the gateway is not delivered

    # The gateway's receipt for one of the Wangs' texts: their household is reached.
    [wang_text] = await messaging.messages(recipient_id=wang_2, channel="sms")
    assert (await receipt(messaging, "sms", wang_text.message_id)).json()["changed"] is True
    assert (await receipt(messaging, "sms", wang_text.message_id)).json()["changed"] is False  # repeated: nothing
    # Li answers "收到" to the notice: reached too, and nothing for command to do.
    answered = await messaging.reply("收到", "13800000503", unique("gw"))
    assert answered.json()["outcome"] == "notice_read"
    assert not await messaging.outbox("ReplyNotUnderstood")

    reach = (await messaging.client.get(f"/notices/{notice['notice_id']}/reach", headers=lead)).json()
    assert reach["reached"] == 2
    [missing] = reach["not_reached"]
    assert missing["household_id"] == f"H.{building}.2.201" and missing["room"] == "201"
    assert [m["person_id"] for m in missing["members"]] == [zhao]

    # A lead sees only their own building; a resident sees no reach at all.
    other_lead = messaging.as_("building_lead", "lead-2", building_ids=[other_building])
    refused = await messaging.client.get(
        f"/notices/{notice['notice_id']}/reach", params={"building_id": building}, headers=other_lead
    )
    assert refused.status_code == 403
    theirs = (await messaging.client.get(f"/notices/{notice['notice_id']}/reach", headers=other_lead)).json()
    assert theirs["households"] == 0
    resident = messaging.as_("resident", li)
    assert (await messaging.client.get(f"/notices/{notice['notice_id']}/reach", headers=resident)).status_code == 403
    staff = (await messaging.client.get(f"/notices/{notice['notice_id']}/reach", headers=messaging.staff)).json()
    assert staff["households"] == 3 and staff["reached"] == 2

    # The poster: an A4 page with print CSS, Chinese first.
    poster = await messaging.client.get(f"/notices/{notice['notice_id']}/poster", headers=lead)
    assert poster.status_code == 200 and poster.headers["content-type"].startswith("text/html")
    assert "size: A4" in poster.text and "@media print" in poster.text
    assert poster.text.index("周六核酸检测") < poster.text.index("PCR tests on Saturday")


async def test_households_the_register_names_and_tags_narrow_a_notice(messaging):
    building = unique("B")
    # The register puts 101 and 102 in one household (a family across two flats).
    mother = await registered(messaging, building, "1", "101", "13800000511", tags=("elderly",))
    son = await registered(messaging, building, "1", "102", "13800000512", household=f"H.{building}.1.101")
    await registered(messaging, building, "1", "103", "13800000513")  # not elderly: not named
    sent = await messaging.client.post(
        "/notices",
        json={"headline_zh": "上门接种", "body_zh": "行动不便的老人可预约上门接种。", "building_ids": [building], "tags": ["elderly"]},
        headers=messaging.staff,
    )  # fmt: skip
    assert sent.json()["recipients"] == 1 and sent.json()["households"] == 1
    await messaging.runtime.run_job("messages-send")
    assert [c.channel for c in messaging.gateway.to(mother, "notice")] == ["sms"]
    assert not messaging.gateway.to(son)
    [message] = await messaging.messages(recipient_id=mother)
    assert message.household_id == f"H.{building}.1.101"


async def test_bad_notices_and_receipts_are_refused(messaging):
    nobody = await messaging.client.post(
        "/notices", json={"headline_zh": "通知", "body_zh": "内容"}, headers=messaging.staff
    )
    assert nobody.status_code == 422 and "building, grid or tag" in nobody.json()["detail"]
    lead = messaging.as_("building_lead", "lead-1", building_ids=["B01"])
    not_staff = await messaging.client.post(
        "/notices", json={"headline_zh": "通知", "body_zh": "内容", "building_ids": ["B01"]}, headers=lead
    )
    assert not_staff.status_code == 403
    assert (await messaging.client.get("/notices/nope/reach", headers=messaging.staff)).status_code == 404
    unsigned = await messaging.client.post("/receipts/sms", json={"message_id": "x", "status": "delivered"})
    assert unsigned.status_code == 401
    wrongly = await receipt(messaging, "sms", "x", secret="not-the-gateway-secret-0123456789-abcdef")
    assert wrongly.status_code == 401
    assert (await receipt(messaging, "sms", "no-such-message")).status_code == 404


async def test_a_rating_after_a_notice_still_answers_the_feedback_invitation(messaging):
    resident = await messaging.resident(unique("R"), "13800000521")
    ticket = await invited(messaging, resident)
    messaging.clock.advance(minutes=5)  # the notice is the latest message awaiting a reply
    await messaging.client.post(
        "/notices", json={"headline_zh": "停水通知", "body_zh": "明天9点到12点停水。", "building_ids": ["B01"]},
        headers=messaging.staff,
    )  # fmt: skip
    answer = await messaging.reply("5", "13800000521", unique("gw"))
    assert answer.json()["outcome"] == "feedback"
    [feedback] = await messaging.outbox("FeedbackReceived")
    assert feedback["data"]["ticket_id"] == ticket
