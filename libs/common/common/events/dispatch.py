"""Events published by the dispatch service on `dispatch.events.v1`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from common.events.base import Event, register
from common.events.erasure import ResidentErasureConfirmed
from common.topics import DISPATCH_EVENTS
from common.vocabulary import Category, Priority


class DispatchEvent(Event):
    service: ClassVar[str] = "dispatch"
    topic: ClassVar[str] = DISPATCH_EVENTS
    key_field: ClassVar[str] = "request_id"


class ItemLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    item_id: str
    quantity: float = Field(gt=0, le=1_000_000)


@register
class RequestRaised(DispatchEvent):
    request_id: str
    resident_id: str
    category: Category
    priority: Priority
    due_by: AwareDatetime
    items: list[ItemLine] = Field(default_factory=list)
    details: str | None = None
    grid_id: str | None = None
    building_id: str | None = None
    raised_by: str | None = None
    source: Literal["resident", "building_lead", "staff", "timebank", "green_channel"] | None = None
    redemption_id: str | None = None
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    # >1: the same request raised again after its reservation was rejected and stock came
    # back; supplies retries the reservation, others treat it as the same request.
    reservation_attempt: int | None = None
    recurrence_id: str | None = None


@register
class RequestAssigned(DispatchEvent):
    request_id: str
    volunteer_id: str
    due_by: AwareDatetime | None = None
    previous_volunteer_id: str | None = None
    category: Category | None = None


@register
class DeliveryPlanned(DispatchEvent):
    key_field: ClassVar[str] = "run_id"

    run_id: str
    volunteer_id: str
    stops: list[str]
    distance_m: float = Field(ge=0, le=10_000_000)
    etas: list[AwareDatetime] = Field(default_factory=list)
    depot_id: str | None = None


@register
class RequestFulfilled(DispatchEvent):
    request_id: str
    volunteer_id: str
    service_minutes: int = Field(ge=0, le=24 * 60)  # one request takes at most a day of someone's time
    resident_id: str | None = None
    category: Category | None = None
    note: str | None = None


@register
class DeliveryFailed(DispatchEvent):
    """A volunteer could not complete a request (nobody home, wrong address...): it goes back in the queue."""

    request_id: str
    volunteer_id: str
    reason: str
    attempts: int | None = None


@register
class RequestCancelled(DispatchEvent):
    """A request that will not be served: supplies releases its stock, timebank refunds hours."""

    request_id: str
    reason: str
    redemption_id: str | None = None


@register
class RequestOverdue(DispatchEvent):
    request_id: str
    due_by: AwareDatetime
    volunteer_id: str | None = None
    category: Category | None = None


@register
class DemandSurge(DispatchEvent):
    key_field: ClassVar[str] = "category"

    category: Category
    count: int = Field(ge=0)
    baseline: float = Field(ge=0)
    window_start: AwareDatetime
    window_end: AwareDatetime
    p_value: float | None = None
    grid_id: str | None = None
    suggested_action: str | None = None


@register
class ResidentErasedByDispatch(DispatchEvent, ResidentErasureConfirmed):
    """Dispatch erased what it held of a resident (`ResidentErased`)."""

    key_field: ClassVar[str] = "erasure_id"
