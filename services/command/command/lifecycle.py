"""What people do to a ticket: acknowledge, resolve, give feedback, reassign, add a note.
Each is the same paragraph: lock the ticket, let the domain decide the change, apply it, commit."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

from command import changes, domain
from command.directory import Directory
from command.models import Ticket
from command.settings import CommandSettings
from command.store import Stores
from common.errors import NotFound
from common.outbox import UnitOfWork
from common.runtime import Runtime

Decide = Callable[[domain.TicketState], domain.Change]


class Lifecycle:
    def __init__(self, runtime: Runtime, settings: CommandSettings, directory: Directory, stores: Stores) -> None:
        self.runtime = runtime
        self.tz = settings.tz
        self.reference_key = settings.reference_key
        self.directory = directory
        self.stores = stores
        self._transitions = Counter(
            "firstline_command_transitions_total",
            "Ticket transitions, by action",
            ["action"],
            registry=runtime.registry,
        )

    async def acknowledge(
        self, actor: domain.Actor, ticket_id: str, note: str | None = None, uow: UnitOfWork | None = None
    ) -> Ticket:
        now = self.runtime.clock.now()
        return await self._change(ticket_id, lambda t: domain.acknowledge(t, actor, now, note), uow)

    async def resolve(
        self, actor: domain.Actor, ticket_id: str, resolution: str, uow: UnitOfWork | None = None
    ) -> Ticket:
        domain.resolution_text(resolution)
        now = self.runtime.clock.now()
        return await self._change(ticket_id, lambda t: domain.resolve(t, actor, now, resolution), uow)

    async def feedback(
        self, actor: domain.Actor, ticket_id: str, satisfaction: int, comment: str | None, uow: UnitOfWork | None = None
    ) -> Ticket:
        """Feedback on a resolved ticket: 3–5 closes it, 1–2 reopens it with fresh deadlines."""
        domain.feedback_stage(satisfaction)
        config, now = await self.directory.config(), self.runtime.clock.now()
        return await self._change(
            ticket_id, lambda t: domain.feedback(t, actor, now, satisfaction, comment, config, self.tz), uow
        )

    async def reassign(
        self, actor: domain.Actor, ticket_id: str, owner: str, reason: str | None, uow: UnitOfWork | None = None
    ) -> Ticket:
        config = await self.directory.config()
        person = domain.assignee(config, owner)
        now = self.runtime.clock.now()
        return await self._change(ticket_id, lambda t: domain.reassign(t, actor, now, person, reason, config), uow)

    async def note(self, actor: domain.Actor, ticket_id: str, note: str, uow: UnitOfWork | None = None) -> Ticket:
        """A note in the ticket's history, by whoever may work on it: no change of stage or
        owner, so no event (what was said may be health data: it stays in the history)."""
        now = self.runtime.clock.now()
        async with self.runtime.work(uow) as uow:
            ticket = await uow.get_for_update(Ticket, ticket_id)
            if ticket is None or not domain.can_see(actor, changes.scope(ticket)):
                raise NotFound(f"no ticket {ticket_id!r} that you may see")
            domain.ensure_can_work(actor, changes.scope(ticket), "note")
            line = domain.LogLine("note", ticket.stage, ticket.stage, actor.sub, now, ticket.owner, note)
            self.stores.of(uow).add_log(ticket_id, line)
        self._transitions.labels("note").inc()
        return ticket

    async def _change(self, ticket_id: str, decide: Decide, uow: UnitOfWork | None) -> Ticket:
        async with self.runtime.work(uow) as uow:
            ticket = await uow.get_for_update(
                Ticket, ticket_id
            )  # two people acting at once: the second sees the first's change
            if ticket is None:
                raise NotFound("no such ticket that you may see")  # as for one you may not see
            change = decide(changes.state(ticket))
            changes.apply(uow, self.stores.of(uow), ticket, change, self.reference_key)
        self._transitions.labels(change.counted_as).inc()
        return ticket
