"""Escalation of overdue tickets up their owners' supervisor chains (messaging tells each new
owner from TicketEscalated). Safe on several replicas: a unique (ticket, opening, level) row
decides which replica escalates, never timing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from prometheus_client import Counter
from sqlalchemy import select

from command import changes, domain
from command.directory import Directory
from command.models import EscalationRow, Ticket
from command.settings import CommandSettings
from command.store import Stores
from common.db import insert_ignore
from common.outbox import UnitOfWork
from common.runtime import Runtime

log = logging.getLogger(__name__)


class Escalations:
    def __init__(self, runtime: Runtime, settings: CommandSettings, directory: Directory, stores: Stores) -> None:
        self.runtime = runtime
        self.settings = settings
        self.directory = directory
        self.stores = stores
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
                (
                    await session.execute(
                        select(Ticket.ticket_id)
                        .where(Ticket.stage.in_(domain.ACTIVE_STAGES), Ticket.next_check_at <= now)
                        .order_by(Ticket.next_check_at)
                        .limit(self.settings.escalation_batch)
                    )
                )
                .scalars()
                .all()
            )
        escalated = 0
        for ticket_id in due:
            escalation = await self.escalate(ticket_id, now, config)
            if escalation is not None:
                escalated += 1
                self._escalations.labels(str(escalation.level)).inc()
        if escalated:
            log.info("escalated %d overdue tickets", escalated)
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
                sensitive=domain.sensitive(ticket.trigger, ticket.facts, ticket.description),
            )  # fmt: skip
            if escalation is None:  # acknowledged meanwhile, or at the top: look again at the next deadline
                following = domain.next_check(ticket.stage, ticket.respond_by, ticket.resolve_by)
                ticket.next_check_at = following if following and following > now else None
                return None
            claimed = await insert_ignore(
                uow.session,
                EscalationRow,
                {"ticket_id": ticket_id, "opening": ticket.reopen_count, "level": escalation.level, "breach": escalation.breach,
                 "from_owner": escalation.previous_owner, "to_owner": escalation.owner.person_id, "at": now},
                ["ticket_id", "opening", "level"],
            )  # fmt: skip
            if not claimed:
                return None  # another replica escalated it
            change = domain.escalated(changes.state(ticket), escalation, now)
            changes.apply(uow, self.stores.of(uow), ticket, change, self.settings.reference_key)
        return escalation
