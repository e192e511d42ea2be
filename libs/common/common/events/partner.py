"""What the command center shares with partner departments, one topic each
(`partner.<department>.v1`, key ticket_id), minimised to what that department needs.

- health (卫健) gets what it needs to act on a fever: the resident, room, phone,
  temperature and symptoms, and the ticket's own id.
- property management (物业) and police (公安) get the building, the action asked and
  their own reference to the ticket, nothing else: `ticket_id` on their topics is an HMAC
  of the ticket id under a key of that department, so their messages cannot be joined with
  partner.health.v1 or with each other.

Each message carries the ticket's stage, so a partner sees the ticket open and move on;
the classes have no field that could carry what a department must not see.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from pydantic import AwareDatetime, Field

from common.events.base import Event, register
from common.topics import PARTNER_HEALTH, PARTNER_POLICE, PARTNER_PROPERTY
from common.vocabulary import Priority, Stage


class PartnerEvent(Event):
    service: ClassVar[str] = "command"
    key_field: ClassVar[str] = "ticket_id"

    ticket_id: str  # health: the ticket's id; property and police: their own reference to it
    kind: str
    stage: Stage
    priority: Priority
    respond_by: AwareDatetime
    resolve_by: AwareDatetime
    at: AwareDatetime
    action: str | None = None  # what the department is asked to do


@register
class HealthTicketShared(PartnerEvent):
    """A ticket for the health department (a fever or symptoms): who, where, how to call, what was measured."""

    topic: ClassVar[str] = PARTNER_HEALTH

    resident_id: str | None = None
    name: str | None = None
    building_id: str | None = None
    unit: str | None = None
    room: str | None = None
    phone: str | None = None
    temperature_c: float | None = Field(default=None, ge=34.0, le=43.0)
    symptoms: list[str] = Field(default_factory=list)
    date: dt.date | None = None


@register
class PropertyTicketShared(PartnerEvent):
    """A building action for property management: the building and the action, never health data."""

    topic: ClassVar[str] = PARTNER_PROPERTY

    building_id: str | None = None


@register
class PoliceTicketShared(PartnerEvent):
    """A matter for the police: the building and the action asked, never health data."""

    topic: ClassVar[str] = PARTNER_POLICE

    building_id: str | None = None
    summary: str | None = None  # always null: what residents wrote stays with the command center


__all__ = ["HealthTicketShared", "PartnerEvent", "PoliceTicketShared", "PropertyTicketShared"]
