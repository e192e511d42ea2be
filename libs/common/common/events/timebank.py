"""Events published by the time bank on `timebank.events.v1`."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from common.events.base import Event, register
from common.events.erasure import ResidentErasureConfirmed
from common.topics import TIMEBANK_EVENTS


class TimebankEvent(Event):
    service: ClassVar[str] = "timebank"
    topic: ClassVar[str] = TIMEBANK_EVENTS
    key_field: ClassVar[str] = "member_id"


MAX_HOURS = 1000.0  # no single credit, redemption or refund is plausibly larger


@register
class HoursCredited(TimebankEvent):
    member_id: str
    hours: float = Field(gt=0, le=MAX_HOURS)
    reason: str
    request_id: str | None = None
    entry_id: str | None = None
    transfer_id: str | None = None
    activity: str | None = None
    points: int | None = None
    balance_hours: float | None = None


@register
class HoursRedeemed(TimebankEvent):
    """Hours spent on a service: dispatch raises `request_id` for `for_member_id` (or the member)."""

    member_id: str
    hours: float = Field(gt=0, le=MAX_HOURS)
    reason: str
    request_id: str | None = None
    redemption_id: str | None = None
    for_member_id: str | None = None
    purpose: str | None = None
    details: str | None = None
    category: str | None = None
    transfer_id: str | None = None


@register
class HoursRefunded(TimebankEvent):
    member_id: str
    hours: float = Field(gt=0, le=MAX_HOURS)
    reason: str
    request_id: str | None = None
    redemption_id: str | None = None
    transfer_id: str | None = None


@register
class CouponIssued(TimebankEvent):
    coupon_id: str
    member_id: str
    merchant_id: str
    offer_id: str | None = None
    price: float | None = None
    unit: str | None = None


@register
class CouponRedeemed(TimebankEvent):
    coupon_id: str
    member_id: str
    merchant_id: str
    offer_id: str | None = None
    transfer_id: str | None = None


@register
class ResidentErasedByTimebank(TimebankEvent, ResidentErasureConfirmed):
    """Timebank erased what it held of a resident (`ResidentErased`)."""

    key_field: ClassVar[str] = "erasure_id"
