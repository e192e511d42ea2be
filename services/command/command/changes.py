"""How a decided change reaches a ticket: its fields, its history, its event, and the
partner departments it concerns."""

from __future__ import annotations

from datetime import datetime

from command import domain
from command.models import Ticket
from command.store import Store, TicketRow
from common.events.partner import PartnerEvent
from common.outbox import UnitOfWork

# What a partner message reads of a ticket (domain.partner_event).
SHARED_FIELDS = ("ticket_id", "kind", "stage", "priority", "respond_by", "resolve_by", "facts", "resident_id",
                 "building_id", "description", "trigger")  # fmt: skip


def scope(ticket: TicketRow) -> domain.TicketScope:
    return domain.TicketScope(
        owner=ticket.owner,
        department=ticket.department,
        grid_id=ticket.grid_id,
        building_id=ticket.building_id,
        resident_id=ticket.resident_id,
        reported_by=ticket.reported_by,
    )


def state(ticket: TicketRow) -> domain.TicketState:
    return domain.TicketState(
        ticket_id=ticket.ticket_id, stage=ticket.stage, owner=ticket.owner, department=ticket.department,
        kind=ticket.kind, priority=ticket.priority, respond_by=ticket.respond_by, resolve_by=ticket.resolve_by,
        scope=scope(ticket), action=ticket.action, shares=ticket.shares, escalation_level=ticket.escalation_level,
        reopen_count=ticket.reopen_count, trigger=ticket.trigger, facts=ticket.facts, description=ticket.description,
    )  # fmt: skip


def apply(uow: UnitOfWork, store: Store, ticket: TicketRow, change: domain.Change, reference_key: bytes) -> None:
    for name, value in change.fields.items():
        setattr(ticket, name, value)
    store.add_log(ticket.ticket_id, change.log)
    uow.emit(change.event, at=change.log.at)
    share(uow, ticket, change.log.at, reference_key)


def share(uow: UnitOfWork, ticket: TicketRow | Ticket, now: datetime, reference_key: bytes) -> None:
    """Tell each partner department the ticket concerns, minimised (partner.<dept>.v1), each
    under its own reference to the ticket (COMMAND_PARTNER_REFERENCE_KEY)."""
    for department in ticket.shares or {}:
        message = partner_message(ticket, department, now, reference_key)
        if message is not None:
            uow.emit(message, at=now)


def partner_message(
    ticket: TicketRow | Ticket, department: str, at: datetime, reference_key: bytes
) -> PartnerEvent | None:
    """What partner.<department>.v1 says of the ticket as it stands at `at` (None: not shared)."""
    if department not in (ticket.shares or {}):
        return None
    snapshot = {name: getattr(ticket, name) for name in SHARED_FIELDS}
    snapshot["at"] = at
    reference = domain.reference(reference_key, department, ticket.ticket_id)
    return domain.partner_event(department, snapshot, ticket.shares[department], reference)
