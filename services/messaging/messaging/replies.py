"""Messaging use cases that hear people: replies from the gateways, feedback invitations left
unanswered, and the daily check-in reminder (what `MessagingService` does besides queueing and
sending)."""

import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import aliased

from common.clock import local_date
from common.errors import Invalid, NotFound
from common.events.messaging import (
    AcknowledgementReceived,
    CheckInReceived,
    FeedbackReceived,
    FeedbackUnanswered,
    ReplyNotUnderstood,
)
from common.outbox import UnitOfWork
from messaging import domain
from messaging.catalog import CATALOG
from messaging.models import Away, CheckinDay, Contact, InboundReply, Message, RequestRef, TicketRef

log = logging.getLogger(__name__)

AWAITING_REPLY = tuple(kind for kind, template in CATALOG.items() if template.awaits_reply)
AWAITING_RATING = tuple(kind for kind in AWAITING_REPLY if kind != "notice")
REMINDER_CHUNK = 1000
SATISFIED_FROM = 3  # a request rated 3–5 thanks the volunteer; 1–2 is a call back for the grid worker


class Replies:
    """Mixed into `MessagingService`, whose runtime, settings and queue these use."""

    async def receive_reply(self, channel: str, reply_id: str, sender: str, text: str) -> dict[str, Any]:
        """A reply posted by a gateway, applied once per (channel, reply_id): its meaning is
        published on messaging.events.v1 for the service that owns what it changes."""
        domain.check_channel(channel)
        if not reply_id.strip() or not sender.strip():
            raise Invalid("message_id and from must not be empty")
        now = self.clock.now()
        async with self.runtime.work() as uow:
            insert = self.runtime.db.insert(InboundReply)
            new = (
                await uow.session.execute(
                    insert.values(
                        channel=channel,
                        reply_id=reply_id,
                        sender=sender,
                        text=text[:2000],
                        outcome="received",
                        received_at=now,
                    )
                    .on_conflict_do_nothing()
                    .returning(InboundReply.reply_id)
                )
            ).first()
            if new is None:  # the gateway posted it again: applied already
                earlier = await uow.session.get(InboundReply, (channel, reply_id))
                return {"reply_id": reply_id, "outcome": earlier.outcome if earlier else "received", "duplicate": True}
            contact = (
                await uow.session.execute(
                    select(Contact).where(or_(Contact.phone == sender, Contact.person_id == sender)).limit(1)
                )
            ).scalar_one_or_none()
            outcome, answered = await self._apply_reply(uow, channel, reply_id, contact, text, now)
            await uow.session.execute(
                update(InboundReply)
                .where(InboundReply.channel == channel, InboundReply.reply_id == reply_id)
                .values(outcome=outcome, person_id=contact.person_id if contact else None, in_reply_to=answered)
            )
        return {"reply_id": reply_id, "outcome": outcome, "duplicate": False}

    async def _apply_reply(self, uow: UnitOfWork, channel: str, reply_id: str, contact: Contact | None, text: str,
                           now: datetime) -> tuple[str, str | None]:  # fmt: skip
        if contact is None:
            return "unknown_sender", None
        # A rating answers a feedback invitation or a fulfilled request, never a notice sent since.
        kinds = AWAITING_RATING if domain.RATING.match(text or "") else AWAITING_REPLY
        awaiting = (
            await uow.session.execute(
                select(Message)
                .where(Message.recipient_id == contact.person_id, Message.kind.in_(kinds),
                       Message.created_at >= now - timedelta(days=self.settings.reply_window_days))
                .order_by(Message.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()  # fmt: skip
        meaning = domain.interpret(
            text, awaiting.kind if awaiting else None, awaiting is not None and awaiting.status == "replied"
        )
        common = {
            "reply_id": reply_id,
            "channel": channel,
            "received_at": now,
            "in_reply_to": awaiting.message_id if awaiting else None,
        }
        match meaning:
            case domain.Feedback(satisfaction, comment):
                uow.emit(FeedbackReceived(**common, ticket_id=awaiting.ticket_id, resident_id=contact.person_id,
                                          satisfaction=satisfaction, comment=comment))  # fmt: skip
                outcome = "feedback"
            case domain.Acknowledge():
                uow.emit(AcknowledgementReceived(**common, ticket_id=awaiting.ticket_id, person_id=contact.person_id))
                outcome = "acknowledged"
            case domain.CheckIn(temperature_c):
                uow.emit(
                    CheckInReceived(
                        **common,
                        resident_id=contact.person_id,
                        date=local_date(now, self.tz),
                        temperature_c=temperature_c,
                    )
                )
                outcome = "check_in"
            case domain.RequestFeedback(satisfaction, comment):
                if satisfaction < SATISFIED_FROM:  # not a thank-you: the grid worker calls them back
                    uow.emit(ReplyNotUnderstood(**common, sender_id=contact.person_id, text=text[:1000],
                                                resident_id=contact.person_id, grid_id=contact.grid_id,
                                                building_id=contact.building_id))  # fmt: skip
                else:
                    await self._release_thanks(uow, awaiting.request_id, domain.neutral_comment(comment), now)
                outcome = "request_feedback"
            case domain.NoticeRead():
                outcome = "notice_read"
            case domain.AlreadyAnswered():
                return "already_answered", awaiting.message_id if awaiting else None
            case _:
                resident = contact.person_id if contact.role == "resident" else None
                uow.emit(ReplyNotUnderstood(**common, sender_id=contact.person_id, text=text[:1000], resident_id=resident,
                                            grid_id=contact.grid_id, building_id=contact.building_id))  # fmt: skip
                if awaiting is not None and awaiting.kind == "notice":  # whatever they said, the notice reached them
                    await uow.session.execute(
                        update(Message)
                        .where(Message.message_id == awaiting.message_id, Message.status != "replied")
                        .values(status="replied", replied_at=now)
                    )
                    return "not_understood", awaiting.message_id
                return "not_understood", None
        answered = (
            awaiting
            if awaiting is not None and (outcome != "check_in" or awaiting.kind == "checkin_reminder")
            else None
        )
        if answered is not None:
            await uow.session.execute(
                update(Message)
                .where(Message.message_id == answered.message_id)
                .values(status="replied", replied_at=now)
            )
        return outcome, answered.message_id if answered else None

    async def _release_thanks(
        self, uow: UnitOfWork, request_id: str | None, comment: str | None, now: datetime
    ) -> None:
        """The resident answered about their request: their (neutral) words are kept for the
        volunteer's thank-you, and a thank-you held for them goes now, with them."""
        request = await uow.session.get(RequestRef, request_id) if request_id else None
        if request is None:
            return
        request.comment = comment
        held = (
            await uow.session.execute(
                select(Message).where(Message.kind == "volunteer_thanks", Message.request_id == request_id,
                                      Message.status == "queued", Message.attempts == 0)
            )
        ).scalars().all()  # fmt: skip
        for message in held:
            if request.hours is not None:
                message.text = domain.Draft(message.kind, message.recipient_id,
                                            domain.thanks_facts(request.hours, comment)).text()  # fmt: skip
            message.next_attempt_at = domain.not_before(now, self.tz, self.settings.quiet_hours_start,
                                                        self.settings.quiet_hours_end, urgent=False,
                                                        channel=message.channel)  # fmt: skip

    async def record_receipt(
        self, channel: str, message_id: str, status: str, error: str | None = None
    ) -> dict[str, Any]:
        """A gateway's delivery receipt: `delivered`, or `failed` (then an elderly resident's
        SMS becomes a voice call, as when sending fails). A receipt for a message already
        replied to, or repeated, changes nothing."""
        domain.check_channel(channel)
        if status not in ("delivered", "failed"):
            raise Invalid("status must be delivered or failed")
        now = self.clock.now()
        async with self.runtime.work() as uow:
            message = await uow.session.get(Message, message_id)
            if message is None or message.channel != channel:
                raise NotFound(f"no {channel} message {message_id!r}")
            if message.status not in ("sent", "accepted"):
                return {"message_id": message_id, "status": message.status, "changed": False}
            if status == "delivered":
                message.status, message.delivered_at = "delivered", now
            else:
                message.status, message.failed_at, message.last_error = "failed", now, (error or "failed")[:500]
                await self._fall_back(uow, [(message, message.last_error)], now)
        return {"message_id": message_id, "status": status, "changed": True}

    # -- periodic work ------------------------------------------------------------------

    async def follow_up_unanswered(self) -> int:
        """Feedback invitations unanswered after the wait: a call task for the grid worker
        (FeedbackUnanswered), once each; the claim is the row's followed_up_at."""
        now = self.clock.now()
        since = now - timedelta(hours=self.settings.feedback_wait_hours)
        fallback = aliased(Message)  # the voice call an elderly resident answered instead of the SMS
        async with self.runtime.work() as uow:
            claimed = (
                await uow.session.execute(
                    update(Message)
                    .where(Message.kind == "feedback_invitation", Message.status != "replied", Message.created_at <= since,
                           Message.followed_up_at.is_(None), Message.fallback_of.is_(None),
                           ~exists().where(fallback.fallback_of == Message.message_id, fallback.status == "replied"))
                    .values(followed_up_at=now)
                    .returning(Message.ticket_id, Message.recipient_id, Message.created_at)
                    .execution_options(synchronize_session=False)
                )
            ).all()  # fmt: skip
            tickets = {
                row.ticket_id: row
                for row in (
                    await uow.session.execute(select(TicketRef).where(TicketRef.ticket_id.in_({c[0] for c in claimed})))
                ).scalars()
            }
            emitted = 0
            for ticket_id, resident_id, invited_at in claimed:
                ticket = tickets.get(ticket_id)
                if ticket is not None and ticket.closed_at is not None:
                    continue  # answered another way (staff recorded the feedback)
                uow.emit(FeedbackUnanswered(ticket_id=ticket_id, resident_id=resident_id, invited_at=invited_at,
                                            grid_id=ticket.grid_id if ticket else None,
                                            building_id=ticket.building_id if ticket else None))  # fmt: skip
                emitted += 1
        return emitted

    async def remind_before_cutoff(self) -> int | None:
        day = domain.reminder_due(self.clock.now(), self.tz, self.settings.reminder_time, self.settings.cutoff_time)
        return None if day is None else await self.send_reminders(day)

    async def send_reminders(self, day: date) -> int:
        """Queue the day's check-in reminder for each resident who has not checked in (once
        per resident and day, whichever replica runs it)."""
        queued = 0
        after = ""
        while True:
            async with self.runtime.work() as uow:
                key = "checkin_reminder:" + Contact.person_id + f":{day.isoformat()}"
                rows = (
                    await uow.session.execute(
                        select(Contact)
                        .where(Contact.role == "resident", Contact.person_id > after,
                               ~exists().where(CheckinDay.resident_id == Contact.person_id, CheckinDay.day == day),
                               ~exists().where(Away.resident_id == Contact.person_id, Away.from_date <= day,
                                               Away.to_date >= day),
                               ~exists().where(Message.idempotency_key == key))
                        .order_by(Contact.person_id)
                        .limit(REMINDER_CHUNK)
                    )
                ).scalars().all()  # fmt: skip
                if not rows:
                    return queued
                now = self.clock.now()
                batch = [
                    self._row(domain.checkin_reminder(_contact(row), self.settings.cutoff_time), _contact(row),
                              f"checkin_reminder:{row.person_id}:{day.isoformat()}", now)
                    for row in rows
                ]  # fmt: skip
                insert = self.runtime.db.insert(Message)
                result = await uow.session.execute(
                    insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(Message.message_id),
                    batch,
                )
                queued += len(result.all())
                after = rows[-1].person_id

    # -- reading and preferences --------------------------------------------------------


def _contact(row: Contact) -> domain.Contact:
    return domain.Contact(row.person_id, row.role, row.name, row.phone, tuple(row.tags or ()), row.grid_id, row.building_id,
                          row.preferred_channel, row.household_id)  # fmt: skip
