"""The other side of a reply: command and checkin apply messaging's events with the use
cases their own routes call (in-process, their consumers fed as Kafka records, on SQLite
and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from checkin.main import create_app as create_checkin
from checkin.settings import CheckinSettings
from command.main import create_app as create_command
from command.settings import CommandSettings
from common import envelope as ce
from common.clock import ManualClock
from common.events.base import Event
from common.events.messaging import (
    AcknowledgementReceived,
    CheckInReceived,
    FeedbackReceived,
    FeedbackUnanswered,
    ReplyNotUnderstood,
)
from support import AppHarness, serving, unique

START = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
_offsets = itertools.count()


class Service(AppHarness):
    async def deliver(self, *items: Event | ce.CloudEvent) -> list[ce.CloudEvent]:
        records, envelopes = [], []
        for item in items:
            envelope = item if isinstance(item, ce.CloudEvent) else ce.wrap(item, at=self.clock.now())
            envelopes.append(envelope)
            value, key = ce.encode(envelope), envelope.subject.encode()
            records.append(
                ConsumerRecord(
                    "messaging.events.v1", 0, next(_offsets), 0, 0, key, value, None, len(key), len(value), []
                )
            )
        await self.runtime.runners[0].handle(records)
        return envelopes


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def command(database_url, clock) -> AsyncIterator[Service]:
    settings = CommandSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False, start_consumers=False)
    app = create_command(settings, clock=clock)
    async with serving(app, lambda client: Service(app, clock, client)) as harness:
        yield harness


@pytest.fixture
async def checkin(database_url, clock) -> AsyncIterator[Service]:
    settings = CheckinSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False, start_consumers=False)
    app = create_checkin(settings, clock=clock)
    async with serving(app, lambda client: Service(app, clock, client)) as harness:
        yield harness


def reply(clock, **fields) -> dict:
    return {"reply_id": unique("gw"), "channel": "sms", "received_at": clock.now(), **fields}


async def resolved_complaint(command: Service, resident: str) -> str:
    opened = await command.client.post(
        "/tickets",
        json={"category": "complaint", "description": "楼道灯坏了"},
        headers=command.as_("resident", resident),
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()["ticket_id"]
    await resolve(command, ticket)
    return ticket


async def resolve(command: Service, ticket: str) -> None:
    staff = command.as_("command", "cmd-duty")
    assert (await command.client.post(f"/tickets/{ticket}/acknowledge", headers=staff)).status_code == 200
    resolved = await command.client.post(f"/tickets/{ticket}/resolve", json={"resolution": "换了灯泡"}, headers=staff)
    assert resolved.status_code == 200, resolved.text


async def stage(command: Service, ticket: str) -> str:
    response = await command.client.get(f"/tickets/{ticket}", headers=command.as_("command", "cmd-duty"))
    return response.json()["stage"]


async def test_a_2_reopens_and_a_5_closes_applied_once(command):
    resident = unique("R")
    ticket = await resolved_complaint(command, resident)
    [two] = await command.deliver(
        FeedbackReceived(
            **reply(command.clock), ticket_id=ticket, resident_id=resident, satisfaction=2, comment="还是黑的"
        )
    )
    assert await stage(command, ticket) == "reopened"
    await command.deliver(two)  # redelivered: nothing more
    assert len(await command.outbox("TicketReopened")) == 1
    await resolve(command, ticket)
    await command.deliver(
        FeedbackReceived(**reply(command.clock), ticket_id=ticket, resident_id=resident, satisfaction=5)
    )
    assert await stage(command, ticket) == "closed"
    [closed] = await command.outbox("TicketClosed")
    assert closed["data"]["satisfaction"] == 5 and closed["data"]["by"] == resident


async def test_an_owner_acknowledges_by_reply(command):
    resident = unique("R")
    opened = await command.client.post(
        "/tickets", json={"category": "complaint", "description": "噪音"}, headers=command.as_("resident", resident)
    )
    ticket = opened.json()["ticket_id"]
    owner = opened.json()["owner"]
    await command.deliver(
        AcknowledgementReceived(**reply(command.clock, channel="chat"), ticket_id=ticket, person_id=owner)
    )
    assert await stage(command, ticket) == "responding"


async def test_replies_nobody_understands_and_unanswered_invitations_become_grid_tickets(command):
    resident = unique("R")
    await command.deliver(ReplyNotUnderstood(**reply(command.clock), sender_id=resident, resident_id=resident, text="我发烧了 38.5",
                                             grid_id="G1", building_id="B01"))  # fmt: skip
    ticket = unique("T")
    await command.deliver(
        FeedbackUnanswered(ticket_id=ticket, resident_id=resident, invited_at=command.clock.now(), grid_id="G1")
    )
    opened = {e["data"]["kind"]: e["data"] for e in await command.outbox("TicketOpened")}
    assert opened["message_reply"]["owner"] == "gw-G1" and opened["feedback_call"]["owner"] == "gw-G1"
    assert "38.5" not in opened["message_reply"]["title"]  # the words are on the ticket, never in its title
    assert ticket in opened["feedback_call"]["title"]


async def test_a_check_in_by_reply(checkin):
    body = {"name": "王芳", "phone": "13800000201", "grid_id": "G1", "building_id": "B01", "unit": "1", "room": "101"}
    registered = await checkin.client.post("/residents", json=body, headers=checkin.as_("admin", "admin-1"))
    resident = registered.json()["resident_id"]
    event = CheckInReceived(
        **reply(checkin.clock), resident_id=resident, date=checkin.clock.now().date(), temperature_c=36.6
    )
    await checkin.deliver(event)
    [submitted] = await checkin.outbox("CheckInSubmitted")
    assert submitted["data"]["resident_id"] == resident and submitted["data"]["channel"] == "self"
    assert submitted["data"]["temperature_c"] == 36.6
    voice = CheckInReceived(
        **reply(checkin.clock, channel="voice"),
        resident_id=resident,
        date=checkin.clock.now().date(),
        temperature_c=37.5,
    )
    await checkin.deliver(voice)  # a second check-in the same day: as POST /checkins treats it
    assert [e["data"]["channel"] for e in await checkin.outbox("CheckInSubmitted")][-1] in ("self", "voice_call")


async def test_check_ins_by_reply_are_written_with_the_claim_of_their_event(checkin):
    # The check-in is written in the consumer's unit of work (no commit before it, no second
    # transaction): redelivered, it changes nothing; two in one batch are both applied.
    residents = []
    for room in ("301", "302"):
        body = {
            "name": "李伟",
            "phone": "13800000211",
            "grid_id": "G1",
            "building_id": "B01",
            "unit": "3",
            "room": room,
        }
        registered = await checkin.client.post("/residents", json=body, headers=checkin.as_("admin", "admin-1"))
        residents.append(registered.json()["resident_id"])
    today = checkin.clock.now().date()
    first, second = (
        CheckInReceived(**reply(checkin.clock), resident_id=r, date=today, temperature_c=36.5) for r in residents
    )
    envelopes = await checkin.deliver(first, second)
    await checkin.deliver(*envelopes, envelopes[0])  # redelivered, one of them twice in the batch
    submitted = await checkin.outbox("CheckInSubmitted")
    assert sorted(e["data"]["resident_id"] for e in submitted) == sorted(residents)
    household = await checkin.client.get(f"/households/{residents[0]}", headers=checkin.as_("admin", "admin-1"))
    [member] = household.json()["members"]
    assert member["status"] == "checked_in" and member["channel"] == "self"
