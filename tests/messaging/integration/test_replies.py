"""Replies through POST /inbound/<channel>: signed or refused, applied once per gateway
message id, each meaning published on messaging.events.v1; unanswered invitations become
a call task; the record is read as tickets are, scoped to who asks."""

from __future__ import annotations

from common.events.command import TicketClosed, TicketOpened, TicketResolved
from conftest import SECRET
from support import unique


async def invited(messaging, resident: str, owner: str = "gw-G1") -> str:
    ticket = unique("T")
    now = messaging.clock.now()
    await messaging.deliver(TicketOpened(ticket_id=ticket, kind="complaint", priority="normal", owner=owner, department="grid",
                                         respond_by=now, resolve_by=now, resident_id=resident, grid_id="G1"))  # fmt: skip
    await messaging.deliver(TicketResolved(ticket_id=ticket, stage="resolved", owner=owner, at=now))
    await messaging.runtime.run_job("messages-send")
    return ticket


async def test_unsigned_or_wrongly_signed_replies_are_refused(messaging):
    resident = await messaging.resident(unique("R"), "13800000101")
    await invited(messaging, resident)
    unsigned = await messaging.client.post(
        "/inbound/sms", json={"message_id": "m1", "from": "13800000101", "text": "5"}
    )
    assert unsigned.status_code == 401 and "unsigned" in unsigned.json()["detail"]
    wrong = await messaging.reply("5", "13800000101", unique("m"), secret="not-the-secret")
    assert wrong.status_code == 401 and "does not match" in wrong.json()["detail"]
    assert await messaging.outbox("FeedbackReceived") == []
    bad_body = await messaging.reply("5", "", unique("m"))
    assert bad_body.status_code == 422


async def test_a_rating_is_feedback_once_however_often_the_gateway_posts_it(messaging):
    resident = await messaging.resident(unique("R"), "13800000102")
    ticket = await invited(messaging, resident)
    reply_id = unique("gw")
    first = await messaging.reply("2 菜还没送到", "13800000102", reply_id)
    assert first.status_code == 200 and first.json() == {
        "reply_id": reply_id,
        "outcome": "feedback",
        "duplicate": False,
    }
    again = await messaging.reply("2 菜还没送到", "13800000102", reply_id)
    assert again.json() == {"reply_id": reply_id, "outcome": "feedback", "duplicate": True}
    [event] = await messaging.outbox("FeedbackReceived")
    assert event["data"] | {"received_at": None} == event["data"] | {
        "ticket_id": ticket, "resident_id": resident, "satisfaction": 2, "comment": "菜还没送到", "reply_id": reply_id,
        "channel": "sms", "received_at": None}  # fmt: skip
    assert event["subject"] == ticket
    [invitation] = await messaging.messages(kind="feedback_invitation")
    assert invitation.status == "replied" and invitation.replied_at is not None
    assert event["data"]["in_reply_to"] == invitation.message_id
    # Another answer to the same invitation (a new gateway id) applies nothing more.
    later = await messaging.reply("5", "13800000102", unique("gw"))
    assert later.json()["outcome"] == "already_answered"
    assert len(await messaging.outbox("FeedbackReceived")) == 1


async def test_an_owner_acknowledges_by_replying_shou_dao(messaging):
    await messaging.client.put(
        "/contacts/gw-G1", json={"role": "grid_worker", "name": "网格员 Li"}, headers=messaging.staff
    )
    resident = await messaging.resident(unique("R"), "13800000103")
    ticket = unique("T")
    now = messaging.clock.now()
    await messaging.deliver(TicketOpened(ticket_id=ticket, kind="followup", priority="normal", owner="gw-G1", department="grid",
                                         respond_by=now, resolve_by=now, resident_id=resident, grid_id="G1"))  # fmt: skip
    messaging.clock.advance(minutes=15)  # a non-urgent ticket alone in its owner's digest reads as its own notice
    await messaging.runtime.run_job("ticket-digests")
    response = await messaging.reply("收到", "gw-G1", unique("chat"), channel="chat")
    assert response.json()["outcome"] == "acknowledged"
    [event] = await messaging.outbox("AcknowledgementReceived")
    assert (
        event["data"]["ticket_id"] == ticket
        and event["data"]["person_id"] == "gw-G1"
        and event["data"]["channel"] == "chat"
    )


async def test_a_check_in_by_reply_and_a_reply_nobody_understands(messaging):
    resident = await messaging.resident(unique("R"), "13800000104", grid_id="G2")
    checked = await messaging.reply("打卡 36.6", "13800000104", unique("gw"))
    assert checked.json()["outcome"] == "check_in"
    [event] = await messaging.outbox("CheckInReceived")
    assert (
        event["subject"] == resident
        and event["data"]["temperature_c"] == 36.6
        and event["data"]["date"] == "2026-11-21"
    )
    puzzled = await messaging.reply("家里没菜了，能帮忙吗", "13800000104", unique("gw"))
    assert puzzled.json()["outcome"] == "not_understood"
    [ticket] = await messaging.outbox("ReplyNotUnderstood")
    assert ticket["data"]["text"] == "家里没菜了，能帮忙吗" and ticket["data"]["grid_id"] == "G2"
    assert ticket["data"]["resident_id"] == resident and ticket["subject"] == resident
    stranger = await messaging.reply("5", "19999999999", unique("gw"))
    assert stranger.status_code == 200 and stranger.json()["outcome"] == "unknown_sender"


async def test_an_unanswered_invitation_becomes_a_call_task_once(messaging):
    quiet = await messaging.resident(unique("R"), "13800000105")
    closed = await messaging.resident(unique("R"), "13800000106")
    answering = await messaging.resident(unique("R"), "13800000107")
    quiet_ticket = await invited(messaging, quiet)
    closed_ticket = await invited(messaging, closed)
    await invited(messaging, answering)
    await messaging.reply("4", "13800000107", unique("gw"))
    # Staff recorded the second one's feedback by hand.
    await messaging.deliver(
        TicketClosed(ticket_id=closed_ticket, stage="closed", owner="gw-G1", at=messaging.clock.now(), satisfaction=4)
    )
    messaging.clock.advance(hours=23)
    assert await messaging.runtime.run_job("feedback-follow-ups") == 0
    messaging.clock.advance(hours=2)
    assert await messaging.runtime.run_job("feedback-follow-ups") == 1
    assert await messaging.runtime.run_job("feedback-follow-ups") == 0
    [task] = await messaging.outbox("FeedbackUnanswered")
    assert (
        task["data"]["ticket_id"] == quiet_ticket
        and task["data"]["resident_id"] == quiet
        and task["data"]["grid_id"] == "G1"
    )


async def test_the_record_is_scoped_like_tickets(messaging):
    mine = await messaging.resident(unique("R"), "13800000108", grid_id="G1")
    other = await messaging.resident(unique("R"), "13800000109", grid_id="G2")
    ticket = await invited(messaging, mine)
    await invited(messaging, other)

    async def seen(headers, **params) -> set[str]:
        response = await messaging.client.get("/messages", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {m["recipient"] for m in response.json()}

    assert await seen(messaging.as_("resident", mine)) == {mine}
    assert await seen(messaging.as_("resident", mine), recipient=other) == set()
    assert await seen(messaging.as_("grid_worker", "gw-G1", grid_ids=["G1"]), kind="feedback_invitation") == {mine}
    assert await seen(messaging.as_("building_lead", "lead", building_ids=["B01"]), kind="feedback_invitation") == {
        mine,
        other,
    }
    assert await seen(messaging.staff, kind="feedback_invitation") == {mine, other}
    messaging.clock.advance(minutes=15)  # the owner hears of both tickets in one digest, which names neither
    await messaging.runtime.run_job("ticket-digests")
    assert await seen(messaging.staff, kind="ticket_digest") == {"gw-G1"}
    assert await seen(messaging.staff, ticket_id=ticket) == {mine}
    [record] = (
        await messaging.client.get(
            "/messages", params={"ticket_id": ticket, "kind": "feedback_invitation"}, headers=messaging.staff
        )
    ).json()
    assert record["status"] == "accepted" and record["channel"] == "sms" and record["text"].startswith("【第一道防线】")
    assert (await messaging.client.get("/messages")).status_code == 401


async def test_preferences_and_metrics(messaging):
    resident = await messaging.resident(unique("R"), "13800000110")
    own = messaging.as_("resident", resident)
    assert (
        await messaging.client.put(
            f"/contacts/{resident}/preferences", json={"preferred_channel": "voice"}, headers=own
        )
    ).status_code == 200
    forbidden = await messaging.client.put(
        f"/contacts/{resident}/preferences",
        json={"preferred_channel": "sms"},
        headers=messaging.as_("resident", "someone-else"),
    )
    assert forbidden.status_code == 403
    bad = await messaging.client.put(
        f"/contacts/{resident}/preferences", json={"preferred_channel": "pigeon"}, headers=own
    )
    assert bad.status_code == 422
    await invited(messaging, resident)
    assert [c.channel for c in messaging.gateway.to(resident)] == ["voice"]
    await messaging.runtime.run_job("metrics")
    text = (await messaging.client.get("/metrics")).text
    assert 'firstline_messaging_messages{channel="voice",kind="feedback_invitation",status="accepted"} 1.0' in text
    assert resident not in text and "13800000110" not in text
    assert SECRET not in text


async def test_alertmanager_alerts_reach_the_staff_group_once(database_url, clock, gateway):
    from conftest import Harness, settings_for
    from messaging.main import create_app
    from support import serving

    app = create_app(settings_for(database_url, gateway, alerts_token="alerts-token-0123456789"), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client, gateway)) as messaging:
        alert = {"status": "firing", "labels": {"alertname": "FirstLineStockOut", "severity": "critical"}, "fingerprint": "f1",
                 "annotations": {"summary": "断货 Stock out: 口罩 at D1", "action": "Receive stock or transfer it"},
                 "startsAt": "2026-11-21T01:00:00Z"}  # fmt: skip
        body = {"version": "4", "status": "firing", "alerts": [alert]}
        assert (await messaging.client.post("/alerts", json=body)).status_code == 401
        assert (
            await messaging.client.post("/alerts", json=body, headers={"Authorization": "Bearer wrong"})
        ).status_code == 401
        auth = {"Authorization": "Bearer alerts-token-0123456789"}
        assert (await messaging.client.post("/alerts", json=body, headers=auth)).json() == {"queued": 1}
        assert (await messaging.client.post("/alerts", json=body, headers=auth)).json() == {
            "queued": 0
        }  # repeated by Alertmanager
        await messaging.runtime.run_job("messages-send")
        [call] = messaging.gateway.to("staff-group", "alert")
        assert (
            call.channel == "chat"
            and call.body["text"] == "【告警】断货 Stock out: 口罩 at D1\nAlert (firing): Receive stock or transfer it"
        )
