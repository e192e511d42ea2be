"""Events published by the command center on `command.events.v1`: the ticket lifecycle."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from common.events.base import Event, register
from common.events.erasure import ResidentErasureConfirmed
from common.topics import COMMAND_EVENTS
from common.vocabulary import Priority, Stage


class CommandEvent(Event):
    service: ClassVar[str] = "command"
    topic: ClassVar[str] = COMMAND_EVENTS
    key_field: ClassVar[str] = "ticket_id"


@register
class TicketOpened(CommandEvent):
    ticket_id: str
    kind: str
    priority: Priority
    owner: str
    department: str
    respond_by: AwareDatetime
    resolve_by: AwareDatetime
    source_event_ids: list[str] = Field(default_factory=list)
    stage: Stage = "discovered"
    subject_id: str | None = None
    title: str | None = None
    grid_id: str | None = None
    building_id: str | None = None
    category: str | None = None
    resident_id: str | None = None


class TicketTransition(CommandEvent):
    ticket_id: str
    stage: Stage
    owner: str
    at: AwareDatetime
    by: str | None = None


@register
class TicketAcknowledged(TicketTransition):
    pass


@register
class TicketResolved(TicketTransition):
    resolution: str | None = None


@register
class TicketClosed(TicketTransition):
    satisfaction: int = Field(ge=1, le=5)
    comment: str | None = None


@register
class TicketReopened(TicketTransition):
    reason: str | None = None
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = None


@register
class TicketEscalated(TicketTransition):
    level: int = Field(default=1, ge=1)
    previous_owner: str | None = None
    priority: Priority | None = None


@register
class TicketReassigned(TicketTransition):
    previous_owner: str | None = None


@register
class TicketUpdated(TicketTransition):
    """A new event about an open problem joined its ticket instead of opening another."""

    source_event_ids: list[str] = Field(default_factory=list)
    priority: Priority | None = None


@register
class ResidentErasedByCommand(CommandEvent, ResidentErasureConfirmed):
    """Command erased what it held of a resident (`ResidentErased`)."""

    key_field: ClassVar[str] = "erasure_id"
