"""Events published by the check-in service on `checkin.events.v1`."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import AwareDatetime, Field

from common.events.base import Event, register
from common.topics import CHECKIN_EVENTS, CHECKIN_RESIDENTS
from common.vocabulary import Channel, Tag


class CheckinEvent(Event):
    service: ClassVar[str] = "checkin"
    topic: ClassVar[str] = CHECKIN_EVENTS
    key_field: ClassVar[str] = "resident_id"


@register
class ResidentRegistered(CheckinEvent):
    topic: ClassVar[str] = CHECKIN_RESIDENTS  # apart from check-ins: its readers need no health data

    resident_id: str
    community_id: str
    grid_id: str
    building_id: str
    tags: list[Tag] = Field(default_factory=list)
    unit: str | None = None
    room: str | None = None
    name: str | None = None
    phone: str | None = None
    lat: float | None = None
    lon: float | None = None
    # The household the resident belongs to: the register's, or everyone at one building-unit-room.
    household_id: str | None = None


@register
class ResidentAway(CheckinEvent):
    """A resident is away (or in hospital: the reason stays in check-in) on these dates: not
    expected to check in, so nobody reminds them."""

    topic: ClassVar[str] = CHECKIN_RESIDENTS  # with the register: its readers need no health data
    # The registry's topic is compacted by resident id: an absence has a key of its own, so
    # it never replaces the resident's registration.
    key_field: ClassVar[str] = "absence_id"

    absence_id: str
    resident_id: str
    from_date: date
    to_date: date


@register
class CheckInSubmitted(CheckinEvent):
    resident_id: str
    date: date
    temperature_c: float = Field(ge=34.0, le=43.0)  # what a living person's thermometer shows
    symptoms: list[str] = Field(default_factory=list, max_length=20)
    channel: Channel
    submitted_by: str | None = None
    grid_id: str | None = None
    building_id: str | None = None
    fever: bool = False


@register
class CheckInMissed(CheckinEvent):
    resident_id: str
    date: date
    consecutive_days: int = Field(ge=1)
    grid_id: str
    building_id: str
    community_id: str | None = None
    tags: list[Tag] = Field(default_factory=list)


@register
class HealthAnomalyReported(CheckinEvent):
    resident_id: str
    date: date
    temperature_c: float = Field(ge=34.0, le=43.0)  # what a living person's thermometer shows
    symptoms: list[str] = Field(default_factory=list, max_length=20)
    grid_id: str
    building_id: str
    fever: bool = False
    unit: str | None = None
    room: str | None = None
    name: str | None = None
    phone: str | None = None
    tags: list[Tag] = Field(default_factory=list)
    lat: float | None = None
    lon: float | None = None


@register
class ResidentErased(CheckinEvent):
    """An admin erased the resident: every service that holds their personal data removes or
    anonymises it and confirms with its own `ResidentErasedBy<Service>` (key `erasure_id`).
    On the registry topic, so every reader of residents hears it, in order after the
    resident's registration (same key); a tombstone for the key follows it."""

    topic: ClassVar[str] = CHECKIN_RESIDENTS

    resident_id: str
    erasure_id: str = Field(max_length=40)
    requested_at: AwareDatetime


@register
class SamplingLagging(CheckinEvent):
    key_field: ClassVar[str] = "building_id"

    round_id: str
    building_id: str
    completion_rate: float = Field(ge=0, le=1)
    grid_id: str | None = None
    sampled: int | None = None
    expected: int | None = None
    deadline: AwareDatetime | None = None


__all__ = [
    "Channel",
    "CheckInMissed",
    "CheckInSubmitted",
    "HealthAnomalyReported",
    "ResidentAway",
    "ResidentErased",
    "ResidentRegistered",
    "SamplingLagging",
    "Tag",
]
