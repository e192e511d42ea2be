"""What the command center shares with partner departments, one topic each
(`partner.<department>.v1`, key ticket_id), minimised to what that department needs.

- health (卫健) gets what it needs to act on a fever: the resident, room, phone,
  temperature and symptoms.
- property management (物业) gets the building and the action, never health data.
- police (公安) gets public-order matters only, never health data.

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

    ticket_id: str
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
    """A public-order matter for the police: where and what happened, never health data."""

    topic: ClassVar[str] = PARTNER_POLICE

    building_id: str | None = None
    summary: str | None = None


__all__ = ["HealthTicketShared", "PartnerEvent", "PoliceTicketShared", "PropertyTicketShared"]
