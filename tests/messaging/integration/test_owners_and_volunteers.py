"""What owners and volunteers hear, on SQLite and PostgreSQL with a real local gateway: an
urgent ticket's owner at once, the others in one digest per owner per
MESSAGING_TICKET_DIGEST_MINUTES kept in the database (a restart loses none); a volunteer's
thank-you carrying the resident's words, neutralised; no check-in reminder to a resident
who is away."""

from __future__ import annotations

from datetime import timedelta

from common.events.checkin import ResidentAway
from common.events.command import TicketClosed, TicketOpened
from common.events.dispatch import RequestFulfilled, RequestRaised
from common.events.timebank import HoursCredited
from conftest import Harness, settings_for
from messaging.main import create_app
from support import serving, unique


def opened(ticket: str, owner: str, now, priority: str = "normal", kind: str = "complaint") -> TicketOpened:
    return TicketOpened(ticket_id=ticket, kind=kind, priority=priority, owner=owner, department="grid",
                        respond_by=now + timedelta(hours=2), resolve_by=now + timedelta(hours=24), grid_id="G1")  # fmt: skip


async def test_urgent_tickets_at_once_others_in_one_digest_per_owner(messaging):
    now = messaging.clock.now()
    await messaging.deliver(opened(unique("T"), "gw-A", now, priority="urgent", kind="fever"))
    first, second, closed = unique("T"), unique("T"), unique("T")
    await messaging.deliver(opened(first, "gw-A", now), opened(second, "gw-A", now, kind="followup"))
    await messaging.deliver(opened(closed, "gw-A", now))
    await messaging.deliver(TicketClosed(ticket_id=closed, stage="closed", owner="gw-A", at=now, satisfaction=5))
    only = unique("T")
    await messaging.deliver(opened(only, "gw-B", now))
    await messaging.runtime.run_job("messages-send")
    [urgent] = messaging.gateway.to("gw-A")
    assert urgent.body["kind"] == "ticket_opened" and "紧急" in urgent.body["text"]
    assert "fever" not in urgent.body["text"].lower()  # a health kind reads as a plain ticket

    messaging.clock.advance(minutes=14)
    assert await messaging.runtime.run_job("ticket-digests") == 0  # nobody's oldest has waited 15 minutes yet
    messaging.clock.advance(minutes=1)
    assert await messaging.runtime.run_job("ticket-digests") == 2
    assert await messaging.runtime.run_job("ticket-digests") == 0  # claimed once
    await messaging.runtime.run_job("messages-send")
    [digest] = messaging.gateway.to("gw-A", "ticket_digest")
    assert digest.channel == "chat" and "2张新工单" in digest.body["text"] and "2 new" in digest.body["text"]
    assert "投诉×1" in digest.body["text"] and "未打卡随访×1" in digest.body["text"]  # the closed one is left out
    [alone] = messaging.gateway.to("gw-B", "ticket_opened")  # a digest of one names its ticket: "收到" acknowledges it
    assert only in alone.body["text"]

    # Another ticket after a digest waits its own 15 minutes: at most one digest per owner that often.
    later = unique("T")
    await messaging.deliver(opened(later, "gw-A", messaging.clock.now()))
    messaging.clock.advance(minutes=10)
    assert await messaging.runtime.run_job("ticket-digests") == 0
    messaging.clock.advance(minutes=5)
    assert await messaging.runtime.run_job("ticket-digests") == 1


async def test_waiting_tickets_survive_a_restart(database_url, clock, gateway):
    ticket = unique("T")
    settings = settings_for(database_url, gateway)
    app = create_app(settings, clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client, gateway)) as before:
        await before.deliver(opened(ticket, "gw-C", clock.now()))
    clock.advance(minutes=20)
    app = create_app(settings, clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client, gateway)) as after:
        assert await after.runtime.run_job("ticket-digests") == 1
        await after.runtime.run_job("messages-send")
        assert ticket in gateway.to("gw-C", "ticket_opened")[0].body["text"]


async def test_digests_can_be_turned_off(database_url, clock, gateway):
    app = create_app(settings_for(database_url, gateway, ticket_digest_minutes=0), clock=clock)
    async with serving(app, lambda client: Harness(app, clock, client, gateway)) as messaging:
        await messaging.deliver(opened(unique("T"), "gw-D", clock.now()))
        await messaging.runtime.run_job("messages-send")
        assert messaging.gateway.to("gw-D", "ticket_opened")


async def fulfilled(messaging, phone: str, volunteer: str) -> tuple[str, str]:
    resident, request = await messaging.resident(unique("R"), phone), unique("Q")
    await messaging.deliver(RequestRaised(request_id=request, resident_id=resident, category="medicine", priority="normal",
                                          due_by=messaging.clock.now()))  # fmt: skip
    await messaging.deliver(RequestFulfilled(request_id=request, volunteer_id=volunteer, service_minutes=30))
    await messaging.deliver(
        HoursCredited(member_id=volunteer, hours=0.5, reason="request_fulfilled", request_id=request)
    )
    await messaging.runtime.run_job("messages-send")
    return resident, request


async def test_the_volunteers_thanks_carries_the_residents_words(messaging):
    volunteer = unique("V")
    await messaging.client.put(f"/contacts/{volunteer}", json={"role": "volunteer", "phone": "13900000001"},
                               headers=messaging.staff)  # fmt: skip
    resident, _ = await fulfilled(messaging, "13800000601", volunteer)
    assert messaging.gateway.to(resident, "request_fulfilled")
    assert not messaging.gateway.to(volunteer, "volunteer_thanks")  # waiting for the resident's words

    answer = await messaging.reply("5 谢谢小王，跑了三趟，电话13812345678", "13800000601", unique("gw"))
    assert answer.json()["outcome"] == "request_feedback"
    await messaging.runtime.run_job("messages-send")
    [thanks] = messaging.gateway.to(volunteer, "volunteer_thanks")
    text = thanks.body["text"]
    assert "0.5小时" in text and "居民留言：“谢谢小王，跑了三趟，电话…”" in text and "The resident wrote" in text
    assert "13812345678" not in text and "medicine" not in text


async def test_words_about_health_never_reach_the_volunteer(messaging):
    volunteer = unique("V")
    await messaging.client.put(f"/contacts/{volunteer}", json={"role": "volunteer", "phone": "13900000002"},
                               headers=messaging.staff)  # fmt: skip
    await fulfilled(messaging, "13800000602", volunteer)
    await messaging.reply("5 谢谢！我烧到38.5度，药送得及时", "13800000602", unique("gw"))
    await messaging.runtime.run_job("messages-send")
    [thanks] = messaging.gateway.to(volunteer, "volunteer_thanks")
    assert (
        "居民留言" not in thanks.body["text"] and "38.5" not in thanks.body["text"] and "药" not in thanks.body["text"]
    )


async def test_a_poor_rating_is_a_call_back_and_the_thanks_goes_after_the_wait(messaging):
    volunteer = unique("V")
    await messaging.client.put(f"/contacts/{volunteer}", json={"role": "volunteer", "phone": "13900000003"},
                               headers=messaging.staff)  # fmt: skip
    resident, _ = await fulfilled(messaging, "13800000603", volunteer)
    answer = await messaging.reply("1 菜少了一袋", "13800000603", unique("gw"))
    assert answer.json()["outcome"] == "request_feedback"
    [call_back] = await messaging.outbox("ReplyNotUnderstood")
    assert call_back["data"]["resident_id"] == resident and call_back["data"]["text"] == "1 菜少了一袋"
    await messaging.runtime.run_job("messages-send")
    assert not messaging.gateway.to(volunteer, "volunteer_thanks")
    messaging.clock.advance(minutes=120)
    await messaging.runtime.run_job("messages-send")
    [thanks] = messaging.gateway.to(volunteer, "volunteer_thanks")
    assert "居民留言" not in thanks.body["text"] and "菜少了" not in thanks.body["text"]


async def test_no_reminder_for_a_resident_away(messaging):
    home, away, back = [await messaging.resident(unique("R"), f"1380000070{n}") for n in range(3)]
    today = messaging.clock.now().date()
    await messaging.deliver(ResidentAway(absence_id=unique("A"), resident_id=away, from_date=today - timedelta(days=1),
                                         to_date=today + timedelta(days=3)))  # fmt: skip
    await messaging.deliver(ResidentAway(absence_id=unique("A"), resident_id=back, from_date=today - timedelta(days=5),
                                         to_date=today - timedelta(days=1)))  # fmt: skip
    await messaging.app.state.service.send_reminders(today)
    reminded = {m.recipient_id for m in await messaging.messages(kind="checkin_reminder")}
    assert home in reminded and back in reminded and away not in reminded
