"""The command center's part of privacy (docs/privacy.md): erasing a resident when check-in
says so (`ResidentErased`), the retention job, and the access log of ticket reads.

An erased resident's tickets stay (their kind, stage, department, owners, times and grid
are the community's record), stripped of everything about the person: title, description,
facts, action, notes, resolution, feedback, coordinates, heat-map signals; their copy of
the resident and their check-in facts are deleted, and partners' compacted topics get a
tombstone for each ticket shared with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from fastapi import Request
from sqlalchemy import delete, or_, select, update

from command.models import CheckinFact, EscalationRow, KnownResident, Signal, Ticket, TicketLog
from command.settings import CommandSettings
from command.store import Stores
from common import retention
from common.accesslog import AccessLog, AccessLogEntry, route_of
from common.auth import Principal
from common.clock import local_date
from common.events.checkin import ResidentErased
from common.events.command import ResidentErasedByCommand
from common.outbox import UnitOfWork, delete_sent
from common.runtime import Runtime
from common.topics import partner_topic

ERASED_TITLE = "（已删除 / erased）"


class Privacy:
    def __init__(self, runtime: Runtime, settings: CommandSettings, stores: Stores) -> None:
        self.runtime = runtime
        self.settings = settings
        self.stores = stores
        self.access_log = AccessLog(runtime.db, runtime.clock)

    async def erase_resident(self, event: ResidentErased, uow: UnitOfWork | None = None) -> dict[str, int]:
        """Strip the resident from every ticket about them, delete the copies; confirm."""
        async with self.runtime.work(uow) as uow:
            # A consumer batch keeps its new rows until it ends: write them now, so that
            # what this batch learnt about the resident is erased too.
            await self.stores.of(uow).flush()
            await uow.session.flush()
            session = uow.session
            mine = or_(Ticket.resident_id == event.resident_id, Ticket.subject_id == event.resident_id)
            tickets = (await session.execute(select(Ticket.ticket_id, Ticket.shares).where(mine))).all()
            ids = [ticket_id for ticket_id, _ in tickets]
            records = {"tickets": await _strip(session, ids)}
            records["signals"] = await _delete_in(session, Signal, Signal.ticket_id, ids)
            records["residents"] = (
                await session.execute(delete(KnownResident).where(KnownResident.resident_id == event.resident_id))
            ).rowcount or 0
            records["checkin_facts"] = (
                await session.execute(delete(CheckinFact).where(CheckinFact.resident_id == event.resident_id))
            ).rowcount or 0
            records["outbox_events"] = await delete_sent(session, ids)
            for ticket_id, shares in tickets:
                for department in shares or {}:
                    uow.tombstone(partner_topic(department), ticket_id)
            session.expire_all()  # tickets a batch loaded earlier are read again, stripped
            uow.emit(ResidentErasedByCommand(erasure_id=event.erasure_id, erased_at=self.runtime.clock.now(),
                                             records=records))  # fmt: skip
        retention.report(self.runtime.registry, "command", "erasure", {}, records)
        return records

    async def apply_retention(self) -> dict[str, dict[str, int]]:
        """Tickets closed more than COMMAND_RETENTION_CLOSED_TICKET_DAYS ago (with their
        history, escalations and signals), check-in facts and heat-map signals older than
        COMMAND_RETENTION_CHECKIN_DAYS, access-log rows older than their retention: deleted."""
        settings, now = self.settings, self.runtime.clock.now()
        deleted: dict[str, int] = {}
        async with self.runtime.db.session() as session:
            if before := retention.cutoff(now, settings.retention_closed_ticket_days):
                old = select(Ticket.ticket_id).where(Ticket.closed_at.is_not(None), Ticket.closed_at < before)
                ids = list((await session.execute(old)).scalars())
                for start in range(0, len(ids), 1000):
                    chunk = ids[start : start + 1000]
                    deleted["ticket_log"] = deleted.get("ticket_log", 0) + await _delete_in(
                        session, TicketLog, TicketLog.ticket_id, chunk
                    )
                    deleted["escalations"] = deleted.get("escalations", 0) + await _delete_in(
                        session, EscalationRow, EscalationRow.ticket_id, chunk
                    )
                    deleted["signals"] = deleted.get("signals", 0) + await _delete_in(
                        session, Signal, Signal.ticket_id, chunk
                    )
                    deleted["tickets"] = deleted.get("tickets", 0) + await _delete_in(
                        session, Ticket, Ticket.ticket_id, chunk
                    )
            if settings.retention_checkin_days > 0:
                first_kept = local_date(now, settings.tz) - timedelta(days=int(settings.retention_checkin_days))
                deleted["checkin_facts"] = (
                    await session.execute(delete(CheckinFact).where(CheckinFact.date < first_kept))
                ).rowcount or 0
                before = retention.cutoff(now, settings.retention_checkin_days)
                deleted["signals"] = deleted.get("signals", 0) + (
                    (await session.execute(delete(Signal).where(Signal.at < before))).rowcount or 0
                )
            if before := retention.cutoff(now, settings.retention_access_log_days):
                old = delete(AccessLogEntry).where(AccessLogEntry.at < before)
                deleted["access_log"] = (await session.execute(old)).rowcount or 0
            await session.commit()
        return retention.report(self.runtime.registry, "command", "retention", deleted, {})

    async def tickets_read(self, request: Request, user: Principal, answers: Iterable[dict]) -> None:
        """Write down a read of tickets whose answer carries health facts (docs/privacy.md)."""
        reads = [(a["ticket_id"], a.get("resident_id")) for a in answers if a.get("facts")]
        await self.access_log.record_reads(user, "ticket", route_of(request), reads)


async def _strip(session, ticket_ids: list[str]) -> int:
    if not ticket_ids:
        return 0
    await session.execute(update(TicketLog).where(TicketLog.ticket_id.in_(ticket_ids)).values(note=None))
    result = await session.execute(
        update(Ticket)
        .where(Ticket.ticket_id.in_(ticket_ids))
        .values(
            title=ERASED_TITLE,
            description=None,
            action=None,
            facts={},
            lat=None,
            lon=None,
            resolution=None,
            feedback_comment=None,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


async def _delete_in(session, model, column, values: list[str]) -> int:
    if not values:
        return 0
    return (await session.execute(delete(model).where(column.in_(values)))).rowcount or 0
