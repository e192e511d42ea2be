"""Messaging's part of privacy (docs/privacy.md): erasing a resident on `ResidentErased`,
and the retention of messages."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from common.events.checkin import ResidentErased
from common.events.dispatch import RequestCancelled, RequestRaised
from conftest import START
from messaging.models import Contact, Message


async def count(messaging, model, *where) -> int:
    async with messaging.runtime.db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def cancelled_request(messaging, resident_id: str, request_id: str) -> None:
    raised = RequestRaised(request_id=request_id, resident_id=resident_id, category="medicine", priority="normal",
                           due_by=messaging.clock.now())  # fmt: skip
    await messaging.deliver(raised)
    await messaging.deliver(RequestCancelled(request_id=request_id, reason="no stock"))


async def test_an_erased_residents_contact_goes_and_their_messages_keep_no_text_or_phone(messaging):
    await messaging.resident("R1", "13812345678")
    await messaging.resident("R2", "13800000002")
    await cancelled_request(messaging, "R1", "Q1")
    await cancelled_request(messaging, "R2", "Q2")
    (mine,) = await messaging.messages(recipient_id="R1")
    assert mine.status == "queued" and mine.text and mine.phone == "13812345678"

    await messaging.deliver(ResidentErased(resident_id="R1", erasure_id="E-1", requested_at=START))

    (mine,) = await messaging.messages(recipient_id="R1")
    assert (mine.text, mine.phone, mine.status) == ("", None, "failed")  # never sent now
    (theirs,) = await messaging.messages(recipient_id="R2")
    assert theirs.text and theirs.phone == "13800000002" and theirs.status == "queued"
    assert await count(messaging, Contact, Contact.person_id == "R1") == 0
    assert await count(messaging, Contact, Contact.person_id == "R2") == 1
    await messaging.runtime.run_job("messages-send")
    assert not messaging.gateway.to("R1", "request_cancelled")
    (confirmation,) = await messaging.outbox("ResidentErasedByMessaging")
    assert confirmation["data"]["records"]["contacts"] == 1 and confirmation["data"]["records"]["messages"] == 1


async def test_retention_deletes_exactly_the_messages_older_than_it(messaging):
    await messaging.resident("R1", "13800000001")
    for request_id in ("Q1", "Q2", "Q3"):
        await cancelled_request(messaging, "R1", request_id)
    async with messaging.runtime.db.session() as session:
        for request_id, days, status in (("Q1", 91, "sent"), ("Q2", 89, "sent"), ("Q3", 120, "queued")):
            await session.execute(update(Message).where(Message.request_id == request_id)
                                  .values(created_at=START - timedelta(days=days), status=status))  # fmt: skip
        await session.commit()

    result = await messaging.runtime.run_job("messaging-retention")

    assert result["deleted"]["messages"] == 1
    assert [m.request_id for m in await messaging.messages()] == ["Q3", "Q2"]  # a message not yet sent stays
    assert (await messaging.runtime.run_job("messaging-retention"))["deleted"].get("messages", 0) == 0
