"""Events published by the supplies service on `supplies.events.v1`.

Stock events are keyed by `item_id:depot_id` (DESIGN.md); reservation events by the
request they serve, because a reservation spans items and depots and must stay in order
per request.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.events.base import Event, register
from common.topics import SUPPLIES_EVENTS


class SuppliesEvent(Event):
    service: ClassVar[str] = "supplies"
    topic: ClassVar[str] = SUPPLIES_EVENTS
    key_field: ClassVar[str] = "stock_key"

    @property
    def stock_key(self) -> str:
        return f"{self.item_id}:{self.depot_id}"


class ReservationLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    item_id: str
    quantity: float = Field(gt=0)
    depot_id: str | None = None


class Shortage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    item_id: str
    requested: float
    available: float


@register
class StockLow(SuppliesEvent):
    item_id: str
    depot_id: str
    on_hand: float
    threshold: float
    days_of_cover: float | None = None
    reason: Literal["threshold", "days_of_cover"] = "threshold"
    lead_time_days: float | None = None
    sku: str | None = None
    item_name: str | None = None
    available: float | None = None  # on hand, unexpired, less what is reserved: what was compared
    reserved: float | None = None


@register
class StockOut(SuppliesEvent):
    item_id: str
    depot_id: str
    sku: str | None = None
    item_name: str | None = None
    on_hand: float | None = None  # physically there (expired or reserved), nothing to promise
    reserved: float | None = None


@register
class StockRestored(SuppliesEvent):
    """The clearing event: stock is back above its line after a StockLow or StockOut."""

    item_id: str
    depot_id: str
    on_hand: float
    threshold: float | None = None
    available: float | None = None


@register
class StockExpiring(SuppliesEvent):
    item_id: str
    depot_id: str
    batch: str
    expires_on: date
    quantity: float


@register
class TransferSuggested(SuppliesEvent):
    key_field: ClassVar[str] = "item_id"

    item_id: str
    from_depot_id: str
    to_depot_id: str
    quantity: float = Field(gt=0)
    reason: str | None = None


@register
class StockReserved(SuppliesEvent):
    key_field: ClassVar[str] = "request_id"

    request_id: str
    lines: list[ReservationLine]


@register
class ReservationRejected(SuppliesEvent):
    key_field: ClassVar[str] = "request_id"

    request_id: str
    shortages: list[Shortage]
    lines: list[ReservationLine] = Field(default_factory=list)


@register
class ReservationReleased(SuppliesEvent):
    key_field: ClassVar[str] = "request_id"

    request_id: str
    reason: str | None = None
