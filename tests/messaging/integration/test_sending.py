"""Messaging in-process on SQLite and PostgreSQL, sending to a real local HTTP gateway:
each event is messaged once, failures retry from the database and fall back to voice,
quiet hours and the rate limit hold messages back, reminders go once a day, escalations
reach each new owner."""

from __future__ import annotations

from common.events.checkin import CheckInSubmitted
from common.events.command import TicketEscalated, TicketOpened, TicketResolved
from common.events.dispatch import RequestFulfilled, RequestRaised
from messaging.gateway import sign, verify
from support import unique


def opened(
    ticket_id: str, resident_id: str | None, now, priority: str = "normal", owner: str = "gw-G1"
) -> TicketOpened:
    return TicketOpened(ticket_id=ticket_id, kind="complaint", priority=priority, owner=owner, department="command",
                        respond_by=now, resolve_by=now, resident_id=resident_id, grid_id="G1")  # fmt: skip


async def test_the_same_event_delivered_twice_sends_one_message(messaging):
    resident = await messaging.resident(unique("R"), "13800000001")
    ticket = unique("T")
    await messaging.deliver(opened(ticket, resident, messaging.clock.now()))
    [resolved] = await messaging.deliver(
        TicketResolved(ticket_id=ticket, stage="resolved", owner="gw-G1", at=messaging.clock.now())
    )
    await messaging.deliver(resolved)  # redelivered: the inbox knows it
    await messaging.deliver(resolved, resolved)  # and twice in one batch
    await messaging.runtime.run_job("messages-send")
    [invitation] = messaging.gateway.to(resident, "feedback_invitation")
    assert invitation.channel == "sms" and invitation.body["to"]["phone"] == "13800000001"
    assert invitation.body["text"].startswith("【第一道防线】") and "Reply 1–5" in invitation.body["text"]
    [record] = await messaging.messages(kind="feedback_invitation")
    assert record.status == "accepted" and record.accepted_at is not None and record.ticket_id == ticket
    # The owner hears of the (non-urgent) ticket in their digest, in the staff group.
    assert not messaging.gateway.to("gw-G1")
    messaging.clock.advance(minutes=15)
    assert await messaging.runtime.run_job("ticket-digests") == 1
    await messaging.runtime.run_job("messages-send")
    assert [c.channel for c in messaging.gateway.to("gw-G1", "ticket_opened")] == ["chat"]
    # Sent once: another pass finds nothing due.
    assert await messaging.runtime.run_job("messages-send") == {}


async def test_each_escalation_tells_its_new_owner_once_without_health_details(messaging):
    resident, ticket, now = await messaging.resident(unique("R"), "13800000011"), unique("T"), messaging.clock.now()
    await messaging.deliver(TicketOpened(ticket_id=ticket, kind="fever", priority="high", owner="gw-G1", department="health",
                                         respond_by=now, resolve_by=now, resident_id=resident, grid_id="G1"))  # fmt: skip
    [first] = await messaging.deliver(TicketEscalated(ticket_id=ticket, stage="discovered", owner="grid-lead", at=now, level=1,
                                                      previous_owner="gw-G1"))  # fmt: skip
    await messaging.deliver(first)  # redelivered: no second notice
    await messaging.deliver(TicketEscalated(ticket_id=ticket, stage="discovered", owner="cmd-lead", at=now, level=2,
                                            previous_owner="grid-lead"))  # fmt: skip
    await messaging.runtime.run_job("messages-send")
    [notice] = messaging.gateway.to("grid-lead", "ticket_escalated")
    assert notice.channel == "chat" and "第1级" in notice.body["text"] and "level 1" in notice.body["text"]
    assert "13800000011" not in str(notice.body) and "fever" not in notice.body["text"].lower()
    [higher] = messaging.gateway.to("cmd-lead", "ticket_escalated")
    assert "第2级" in higher.body["text"] and ticket in higher.body["text"]  # the link to the ticket
    assert {m.ticket_id for m in await messaging.messages(kind="ticket_escalated")} == {ticket}


async def test_outbound_calls_are_signed_as_standard_webhooks(messaging):
    # The gateway verifies every call; a call it could not verify would be counted here.
    resident = await messaging.resident(unique("R"), "13800000002")
    request = unique("Q")
    await messaging.deliver(
        RequestRaised(
            request_id=request,
            resident_id=resident,
            category="groceries",
            priority="normal",
            due_by=messaging.clock.now(),
        )
    )
    await messaging.deliver(RequestFulfilled(request_id=request, volunteer_id="V1", service_minutes=20))
    await messaging.runtime.run_job("messages-send")
    assert messaging.gateway.to(resident, "request_fulfilled") and messaging.gateway.bad_signatures == 0
    body, stamp = b'{"a":1}', 1_700_000_000
    assert (
        verify(
            "k",
            {"webhook-id": "m1", "webhook-timestamp": str(stamp), "webhook-signature": sign("k", "m1", stamp, body)},
            body,
            stamp,
            60,
        )
        == "m1"
    )


async def test_a_failed_sms_to_an_elderly_resident_becomes_a_voice_call(messaging):
    elderly = await messaging.resident(unique("R"), "13800000003", tags=("elderly",))
    younger = await messaging.resident(unique("R"), "13800000004")
    messaging.gateway.refuse_channels.add("sms")
    for resident in (elderly, younger):
        ticket = unique("T")
        await messaging.deliver(opened(ticket, resident, messaging.clock.now()))
        await messaging.deliver(
            TicketResolved(ticket_id=ticket, stage="resolved", owner="gw-G1", at=messaging.clock.now())
        )
    attempts = messaging.runtime.settings.send_max_attempts
    for _ in range(attempts):
        await messaging.runtime.run_job("messages-send")
    failed = await messaging.messages(kind="feedback_invitation", status="failed")
    assert {m.recipient_id for m in failed} == {elderly, younger} and all(m.attempts == attempts for m in failed)
    await messaging.runtime.run_job("messages-send")  # the fallback call
    [call] = messaging.gateway.to(elderly, "feedback_invitation")
    assert call.channel == "voice"
    assert messaging.gateway.to(younger) == []  # no voice for them: the grid worker follows up instead
    [voice] = await messaging.messages(kind="feedback_invitation", channel="voice")
    assert (
        voice.fallback_of == next(m.message_id for m in failed if m.recipient_id == elderly)
        and voice.status == "accepted"
    )
    # The elderly resident answers the call (a keypress); the younger one never answers.
    assert (await messaging.reply("4", "13800000003", unique("gw"), channel="voice")).json()["outcome"] == "feedback"
    messaging.clock.advance(hours=25)
    assert await messaging.runtime.run_job("feedback-follow-ups") == 1
    [task] = await messaging.outbox("FeedbackUnanswered")
    assert task["data"]["resident_id"] == younger


async def test_a_refused_message_is_retried_from_the_database(messaging):
    resident = await messaging.resident(unique("R"), "13800000005")
    messaging.gateway.refuse_phones.add("13800000005")
    ticket = unique("T")
    await messaging.deliver(opened(ticket, resident, messaging.clock.now()))
    await messaging.deliver(TicketResolved(ticket_id=ticket, stage="resolved", owner="gw-G1", at=messaging.clock.now()))
    await messaging.runtime.run_job("messages-send")
    [queued] = await messaging.messages(kind="feedback_invitation")
    assert queued.status == "queued" and queued.attempts == 1 and "503" in queued.last_error
    messaging.gateway.refuse_phones.clear()
    await messaging.runtime.run_job("messages-send")
    [sent] = await messaging.messages(kind="feedback_invitation")
    assert sent.status == "accepted" and sent.attempts == 2
    ids = {c.webhook_id for c in messaging.gateway.calls if c.body["to"]["id"] == resident}
    assert ids == {sent.message_id}  # every try carried the same webhook-id: the gateway's idempotency key


async def test_quiet_hours_hold_texts_until_morning_but_not_urgent_notices(messaging):
    messaging.clock.set(messaging.clock.now().replace(hour=15))  # 23:00 in Shanghai
    resident = await messaging.resident(unique("R"), "13800000006")
    ticket = unique("T")
    await messaging.deliver(opened(ticket, resident, messaging.clock.now(), priority="urgent", owner="health-duty"))
    await messaging.deliver(TicketResolved(ticket_id=ticket, stage="resolved", owner="gw-G1", at=messaging.clock.now()))
    await messaging.runtime.run_job("messages-send")
    assert messaging.gateway.to("health-duty", "ticket_opened")  # urgent, at once
    assert messaging.gateway.to(resident) == []
    messaging.clock.advance(hours=8)  # 07:00
    await messaging.runtime.run_job("messages-send")
    assert messaging.gateway.to(resident, "feedback_invitation")


async def test_a_person_gets_at_most_the_hourly_limit(messaging):
    resident = await messaging.resident(unique("R"), "13800000007")
    limit = messaging.runtime.settings.rate_limit_per_hour
    for _ in range(limit + 2):
        request = unique("Q")
        await messaging.deliver(
            RequestRaised(
                request_id=request,
                resident_id=resident,
                category="groceries",
                priority="normal",
                due_by=messaging.clock.now(),
            )
        )
        await messaging.deliver(RequestFulfilled(request_id=request, volunteer_id="V1", service_minutes=20))
    await messaging.runtime.run_job("messages-send")
    assert len(messaging.gateway.to(resident)) == limit
    messaging.clock.advance(minutes=61)  # the first ones have left the hour
    await messaging.runtime.run_job("messages-send")
    assert len(messaging.gateway.to(resident)) == limit + 2


async def test_the_checkin_reminder_goes_once_a_day_by_voice_to_the_elderly(messaging):
    messaging.clock.set(messaging.clock.now().replace(hour=1, minute=5))  # 09:05 in Shanghai
    elderly = await messaging.resident(unique("R"), "13800000008", tags=("elderly",))
    plain = await messaging.resident(unique("R"), "13800000009")
    done = await messaging.resident(unique("R"), "13800000010")
    today = messaging.clock.now().date()
    await messaging.deliver(CheckInSubmitted(resident_id=done, date=today, temperature_c=36.5, channel="self"))
    assert await messaging.runtime.run_job("checkin-reminders") == 2
    assert await messaging.runtime.run_job("checkin-reminders") == 0  # once per resident and day
    await messaging.runtime.run_job("messages-send")
    assert [c.channel for c in messaging.gateway.to(elderly, "checkin_reminder")] == ["voice"]
    assert [c.channel for c in messaging.gateway.to(plain, "checkin_reminder")] == ["sms"]
    assert (
        "王芳" in messaging.gateway.to(plain)[0].body["text"] and "10:00" in messaging.gateway.to(plain)[0].body["text"]
    )
    assert messaging.gateway.to(done) == []
    messaging.clock.advance(hours=1)  # 10:05: past the cutoff, the sweep's turn
    assert await messaging.runtime.run_job("checkin-reminders") is None


async def test_without_gateways_messages_go_to_the_log_and_the_outbox_page(database_url, clock, gateway):
    from conftest import Harness, settings_for
    from messaging.main import create_app
    from support import serving

    app = create_app(settings_for(database_url, gateway, sms_url=None, voice_url=None, chat_url=None), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client, gateway)) as messaging:
        resident = await messaging.resident(unique("R"), "13800000011")
        ticket = unique("T")
        await messaging.deliver(opened(ticket, resident, clock.now()))
        await messaging.deliver(TicketResolved(ticket_id=ticket, stage="resolved", owner="gw-G1", at=clock.now()))
        await messaging.runtime.run_job("messages-send")
        assert gateway.calls == []
        [logged] = await messaging.messages(kind="feedback_invitation")
        assert logged.status == "sent"
        page = await messaging.client.get("/outbox", params={"recipient": resident})
        assert page.status_code == 200 and "请回复数字评价" in page.text and "text/html" in page.headers["content-type"]
