"""Escalation of overdue tickets up their owners' supervisor chains, and the notices that
tell each new owner. Safe on several replicas: a unique (ticket, opening, level) row
decides which replica escalates, never timing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from common.db import insert_ignore
from common.notify import Notification, Notifier, NotifyFailed, Recipient
from common.outbox import UnitOfWork
from common.runtime import Runtime
from prometheus_client import Counter
from sqlalchemy import select, update

from command import changes, domain
from command.directory import Directory
from command.models import EscalationRow, Ticket
from command.settings import CommandSettings
from command.store import Stores

log = logging.getLogger(__name__)


class Escalations:
    def __init__(
        self, runtime: Runtime, settings: CommandSettings, directory: Directory, stores: Stores, notifier: Notifier
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.directory = directory
        self.stores = stores
        self.notifier = notifier
        self._escalations = Counter(
            "firstline_command_escalations_total", "Tickets escalated, by level", ["level"], registry=runtime.registry
        )

    async def escalate_overdue(self) -> int:
        """The periodic job: every ticket past a deadline goes one level up its owner's
        supervisor chain. The unique (ticket, opening, level) row decides which replica does it."""
        now = self.runtime.clock.now()
        config = await self.directory.config()
        async with self.runtime.db.session() as session:
            due = (
                await session.execute(
                    select(Ticket.ticket_id)
                    .where(Ticket.stage.in_(domain.ACTIVE_STAGES), Ticket.next_check_at <= now)
                    .order_by(Ticket.next_check_at)
                    .limit(self.settings.escalation_batch)
                )
            ).scalars().all()
        escalated = 0
        for ticket_id in due:
            escalation = await self.escalate(ticket_id, now, config)
            if escalation is not None:
                escalated += 1
                self._escalations.labels(str(escalation.level)).inc()
        if escalated:
            log.info("escalated %d overdue tickets", escalated)
        await self.send_escalation_notices()
        return escalated

    async def escalate(
        self, ticket_id: str, now: datetime, config: domain.Config, uow: UnitOfWork | None = None
    ) -> domain.Escalation | None:
        """One overdue ticket one level up, unless someone acted on it or another replica escalated it."""
        async with self.runtime.work(uow) as uow:
            # Locked: an acknowledgement or reassignment committing meanwhile is seen, not overwritten.
            ticket = await uow.get_for_update(Ticket, ticket_id)
            if ticket is None or ticket.next_check_at is None or ticket.next_check_at > now:
                return None  # another replica or a person acted on it since our list was read
            escalation = domain.escalate(
                stage=ticket.stage, owner=ticket.owner, priority=ticket.priority, level=ticket.escalation_level,
                respond_by=ticket.respond_by, resolve_by=ticket.resolve_by, now=now, config=config,
                repeat=timedelta(minutes=self.settings.escalation_repeat_minutes),
                max_level=self.settings.escalation_max_level,
            )  # fmt: skip
            if escalation is None:  # acknowledged meanwhile, or at the top: look again at the next deadline
                following = domain.next_check(ticket.stage, ticket.respond_by, ticket.resolve_by)
                ticket.next_check_at = following if following and following > now else None
                return None
            claimed = await insert_ignore(
                uow.session,
                EscalationRow,
                {"ticket_id": ticket_id, "opening": ticket.reopen_count, "level": escalation.level, "breach": escalation.breach,
                 "from_owner": escalation.previous_owner, "to_owner": escalation.owner.person_id, "at": now,
                 "notify_attempts": 0},
                ["ticket_id", "opening", "level"],
            )  # fmt: skip
            if not claimed:
                return None  # another replica escalated it
            changes.apply(uow, self.stores.of(uow), ticket, domain.escalated(changes.state(ticket), escalation, now))
        return escalation

    async def send_escalation_notices(self) -> dict[str, int]:
        """Notify each escalation's new owner through the webhook; failures are retried on
        the next run, and the idempotency key lets the gateway drop a repeat."""
        config = await self.directory.config()
        async with self.runtime.db.session() as session:
            pending = (
                await session.execute(
                    select(EscalationRow, Ticket)
                    .join(Ticket, Ticket.ticket_id == EscalationRow.ticket_id)
                    .where(EscalationRow.notified_at.is_(None), EscalationRow.notify_attempts < self.settings.notify_max_attempts)
                    .order_by(EscalationRow.escalation_id)
                    .limit(self.settings.escalation_batch)
                )
            ).all()
        sent = failed = 0
        for escalation, ticket in pending:
            values: dict[str, Any]
            try:
                await self.notifier.notify(self._notice(escalation, ticket, config))
                values = {"notified_at": self.runtime.clock.now(), "notify_attempts": escalation.notify_attempts + 1}
                sent += 1
            except NotifyFailed as exc:
                values = {"notify_attempts": escalation.notify_attempts + 1, "last_error": str(exc)[:500]}
                failed += 1
            async with self.runtime.work() as uow:
                await uow.session.execute(
                    update(EscalationRow).where(EscalationRow.escalation_id == escalation.escalation_id).values(**values)
                )
        return {"sent": sent, "failed": failed}

    def _notice(self, escalation: EscalationRow, ticket: Ticket, config: domain.Config) -> Notification:
        person = config.people.get(escalation.to_owner)
        local_deadline = (ticket.respond_by if escalation.breach == "respond" else ticket.resolve_by).astimezone(self.settings.tz)
        title = ticket.title
        if person and ticket.kind in domain.HEALTH_KINDS and person.department in domain.NEUTRAL_KIND:
            title = domain.without_health(ticket.model_dump(), person.department)["title"]  # as their view shows it
        return Notification(
            kind="ticket_escalated",
            channel="chat",
            to=Recipient(escalation.to_owner, person.name if person else None, person.phone if person else None),
            text=(
                f"[升级 L{escalation.level}] {title} — missed its {escalation.breach} deadline "
                f"{local_deadline:%m-%d %H:%M}; was {escalation.from_owner}, now yours. Ticket {ticket.ticket_id}."
            ),
            idempotency_key=f"ticket_escalated:{ticket.ticket_id}:{escalation.opening}:{escalation.level}",
            data={"ticket_id": ticket.ticket_id, "level": escalation.level, "breach": escalation.breach,
                  "priority": ticket.priority, "previous_owner": escalation.from_owner},
        )  # fmt: skip
