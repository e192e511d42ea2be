"""Messaging's part of privacy (docs/privacy.md): erasing a resident when check-in says so
(`ResidentErased`), and the retention job.

An erased resident's contact and check-in days are deleted; the messages to them, their
replies, and the messages to staff about their tickets and requests keep their record
(kind, channel, status, times) with the text and phone numbers blanked; messages to them
still waiting to be sent are given up.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select, update

from common import retention
from common.clock import local_date
from common.events.checkin import ResidentErased
from common.events.messaging import ResidentErasedByMessaging
from common.outbox import UnitOfWork, delete_sent
from common.runtime import Runtime
from messaging.models import Away, CheckinDay, Contact, InboundReply, Message, RequestRef, TicketRef
from messaging.settings import MessagingSettings

ERASED = "erased"


class Privacy:
    def __init__(self, runtime: Runtime, settings: MessagingSettings, service) -> None:
        self.runtime = runtime
        self.settings = settings
        self.service = service

    async def erase_resident(self, event: ResidentErased, uow: UnitOfWork | None = None) -> dict[str, int]:
        resident_id = event.resident_id
        async with self.runtime.work(uow) as uow:
            await self.service.flush(uow)  # a consumer batch's messages so far: written, then blanked too
            session = uow.session
            await session.flush()
            now = self.runtime.clock.now()
            tickets = list(
                (
                    await session.execute(select(TicketRef.ticket_id).where(TicketRef.resident_id == resident_id))
                ).scalars()
            )
            requests = list(
                (
                    await session.execute(select(RequestRef.request_id).where(RequestRef.resident_id == resident_id))
                ).scalars()
            )
            about = or_(
                Message.recipient_id == resident_id, Message.ticket_id.in_(tickets), Message.request_id.in_(requests)
            )
            records = {}
            await session.execute(
                update(Message).where(Message.recipient_id == resident_id, Message.status == "queued")
                .values(status="failed", failed_at=now, last_error=ERASED).execution_options(synchronize_session=False)
            )  # fmt: skip
            records["messages"] = (
                await session.execute(
                    update(Message).where(about).values(text="", last_error=None).execution_options(synchronize_session=False)
                )
            ).rowcount or 0  # fmt: skip
            await session.execute(
                update(Message).where(Message.recipient_id == resident_id).values(phone=None)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
            records["replies"] = (
                await session.execute(
                    update(InboundReply).where(InboundReply.person_id == resident_id).values(text="", sender=ERASED)
                    .execution_options(synchronize_session=False)
                )
            ).rowcount or 0  # fmt: skip
            records["contacts"] = (
                await session.execute(delete(Contact).where(Contact.person_id == resident_id))
            ).rowcount or 0
            records["checkin_days"] = (
                await session.execute(delete(CheckinDay).where(CheckinDay.resident_id == resident_id))
            ).rowcount or 0
            records["absences"] = (
                await session.execute(delete(Away).where(Away.resident_id == resident_id))
            ).rowcount or 0
            records["outbox_events"] = await delete_sent(session, [resident_id, *tickets])
            session.expire_all()
            uow.emit(ResidentErasedByMessaging(erasure_id=event.erasure_id, erased_at=now, records=records))
        retention.report(self.runtime.registry, "messaging", "erasure", {}, records)
        return records

    async def apply_retention(self) -> dict[str, dict[str, int]]:
        """Messages (not waiting to be sent) and replies older than
        MESSAGING_RETENTION_MESSAGE_DAYS, check-in days older than
        MESSAGING_RETENTION_CHECKIN_DAYS (and absences ended before that), tickets closed longer than
        MESSAGING_RETENTION_CLOSED_TICKET_DAYS: deleted."""
        settings, now = self.settings, self.runtime.clock.now()
        deleted: dict[str, int] = {}
        async with self.runtime.db.session() as session:
            if before := retention.cutoff(now, settings.retention_message_days):
                old = delete(Message).where(Message.created_at < before, Message.status != "queued")
                deleted["messages"] = (await session.execute(old)).rowcount or 0
                old = delete(InboundReply).where(InboundReply.received_at < before)
                deleted["replies"] = (await session.execute(old)).rowcount or 0
            if settings.retention_checkin_days > 0:
                first_kept = local_date(now, settings.tz) - timedelta(days=int(settings.retention_checkin_days))
                deleted["checkin_days"] = (
                    await session.execute(delete(CheckinDay).where(CheckinDay.day < first_kept))
                ).rowcount or 0
                deleted["absences"] = (
                    await session.execute(delete(Away).where(Away.to_date < first_kept))
                ).rowcount or 0
            if before := retention.cutoff(now, settings.retention_closed_ticket_days):
                old = delete(TicketRef).where(TicketRef.closed_at.is_not(None), TicketRef.closed_at < before)
                deleted["tickets"] = (await session.execute(old)).rowcount or 0
            await session.commit()
        return retention.report(self.runtime.registry, "messaging", "retention", deleted, {})
