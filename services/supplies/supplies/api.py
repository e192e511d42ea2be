"""Supplies HTTP routes: parse, authorise, call the use case, shape the answer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, Field

from common.auth import CurrentUser, Principal, Role, require
from common.limits import Paged, RequestModel
from supplies import domain
from supplies.models import Depot, Item, Movement, Reservation, StockBatch, TransferSuggestion
from supplies.service import Position, SuppliesService

router = APIRouter()


async def get_service(request: Request) -> SuppliesService:
    return request.app.state.service


Service = Annotated[SuppliesService, Depends(get_service)]
# Who moves stock: the supplies officer, and command staff in an emergency (admin always).
Officer = Annotated[Principal, Depends(require(Role.supplies_officer, Role.command))]
# Who reads stock: also dispatchers, who promise deliveries from it.
Reader = Annotated[Principal, Depends(require(Role.supplies_officer, Role.command, Role.dispatcher))]


# -- catalog and places ---------------------------------------------------------------------


class ItemIn(RequestModel):
    item_id: str | None = Field(default=None, max_length=40, description="optional: generated when absent")
    sku: str
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=30, description="box, bottle, kit, package, ...")
    category: domain.Category
    tracks_expiry: bool = False
    threshold: float | None = Field(default=None, description="minimum on hand, every depot")
    lead_time_days: float | None = Field(
        default=None, description="resupply lead time; SUPPLIES_DEFAULT_LEAD_TIME_DAYS when absent"
    )


class ItemOut(BaseModel):
    item_id: str
    sku: str
    name: str
    unit: str
    category: str
    tracks_expiry: bool
    threshold: float | None
    lead_time_days: float | None
    created_at: datetime


@router.post("/items", status_code=status.HTTP_201_CREATED, response_model=ItemOut, tags=["catalog"])
async def create_item(body: ItemIn, user: Officer, service: Service) -> Item:
    """Add an item to the catalog. 409 if the sku exists."""
    return await service.create_item(user.sub, **body.model_dump())


@router.get("/items", response_model=list[ItemOut], tags=["catalog"])
async def list_items(_: CurrentUser, service: Service, page: Paged) -> list[Item]:
    """The catalog: anyone signed in (a resident picks medicine from it)."""
    return page.of(await service.items())


class DepotIn(RequestModel):
    depot_id: str | None = Field(default=None, max_length=40, description="optional: generated when absent")
    name: str = Field(min_length=1, max_length=200)
    lat: float
    lon: float
    kind: domain.DepotKind = "building_point"
    building_id: str | None = None


class DepotOut(BaseModel):
    depot_id: str
    name: str
    kind: str
    lat: float
    lon: float
    building_id: str | None
    created_at: datetime


@router.post("/depots", status_code=status.HTTP_201_CREATED, response_model=DepotOut, tags=["catalog"])
async def create_depot(body: DepotIn, user: Officer, service: Service) -> Depot:
    """Add a depot: the community station or a building's supply point. 409 if the name exists."""
    return await service.create_depot(user.sub, **body.model_dump())


@router.get("/depots", response_model=list[DepotOut], tags=["catalog"])
async def list_depots(_: Reader, service: Service, page: Paged) -> list[Depot]:
    return page.of(await service.depots())


# -- movements ------------------------------------------------------------------------------


class MovementOut(BaseModel):
    movement_id: int
    kind: str
    item_id: str
    depot_id: str
    batch_id: int
    quantity: float
    source: str | None
    reason: str | None
    request_id: str | None
    transfer_id: str | None
    by: str
    at: datetime


class ReceiptIn(RequestModel):
    depot_id: str
    item_id: str
    quantity: float
    batch: str | None = Field(default=None, max_length=64)
    expires_on: date | None = None
    source: domain.Source | None = None
    note: str | None = Field(default=None, max_length=150)


@router.post("/stock/receipts", status_code=status.HTTP_201_CREATED, tags=["stock"])
async def receive(body: ReceiptIn, user: Officer, service: Service) -> dict:
    """Receive stock into a depot (a batch, with its expiry when the item tracks one)."""
    movement = await service.receive(user.sub, **body.model_dump())
    return {
        "movement": MovementOut.model_validate(movement, from_attributes=True),
        **await _level(service, body.item_id, body.depot_id),
    }


class IssueIn(RequestModel):
    depot_id: str
    item_id: str
    quantity: float
    reason: str | None = Field(default=None, max_length=150, description="to whom or what for")


@router.post("/stock/issues", status_code=status.HTTP_201_CREATED, tags=["stock"])
async def issue(body: IssueIn, user: Officer, service: Service) -> dict:
    """Issue stock, first-expiring batch first. 409 when more is asked than is available
    (expired stock and stock reserved for deliveries are not available)."""
    movements = await service.issue(user.sub, **body.model_dump())
    return {
        "movements": [MovementOut.model_validate(m, from_attributes=True) for m in movements],
        **await _level(service, body.item_id, body.depot_id),
    }


class TransferIn(RequestModel):
    item_id: str
    from_depot_id: str
    to_depot_id: str
    quantity: float
    suggestion_id: int | None = Field(default=None, description="the suggested transfer this carries out")


@router.post("/stock/transfers", status_code=status.HTTP_201_CREATED, tags=["stock"])
async def transfer(body: TransferIn, user: Officer, service: Service) -> dict:
    """Move stock between depots, batches and expiry dates kept."""
    transfer_id = await service.transfer(user.sub, **body.model_dump())
    movements = await service.ledger(item_id=body.item_id, limit=500)
    return {
        "transfer_id": transfer_id,
        "movements": [
            MovementOut.model_validate(m, from_attributes=True) for m in movements if m.transfer_id == transfer_id
        ],
        "from": await _level(service, body.item_id, body.from_depot_id),
        "to": await _level(service, body.item_id, body.to_depot_id),
    }


class AdjustmentIn(RequestModel):
    depot_id: str
    item_id: str
    quantity: float = Field(description="signed: negative removes stock, positive adds (count corrections only)")
    reason: domain.AdjustmentReason
    batch: str | None = None
    note: str | None = Field(default=None, max_length=150)


@router.post("/stock/adjustments", status_code=status.HTTP_201_CREATED, tags=["stock"])
async def adjust(body: AdjustmentIn, user: Officer, service: Service) -> dict:
    """Correct the ledger with a reason: loss, damage, expiry (write-off) or a stock count."""
    movements = await service.adjust(user.sub, **body.model_dump())
    return {
        "movements": [MovementOut.model_validate(m, from_attributes=True) for m in movements],
        **await _level(service, body.item_id, body.depot_id),
    }


class PolicyIn(RequestModel):
    item_id: str
    depot_id: str
    minimum: float | None = Field(
        default=None, description="this depot's minimum on hand; the item's threshold when absent"
    )
    lead_time_days: float | None = Field(default=None, description="this depot's resupply lead time")


@router.put("/stock/policies", tags=["stock"])
async def set_policy(body: PolicyIn, _: Officer, service: Service) -> dict:
    """Set the line for one item at one depot; alerts are re-assessed at once."""
    position = await service.set_policy(body.item_id, body.depot_id, body.minimum, body.lead_time_days)
    return _position(position)


# -- reading stock ----------------------------------------------------------------------------


@router.get("/stock", tags=["stock"])
async def stock(_: Reader, service: Service, depot_id: str | None = None, item_id: str | None = None) -> dict:
    """On hand, reserved, available, expired and days of cover per item and depot."""
    positions = await service.positions(depot_id=depot_id, item_id=item_id)
    return {"count": len(positions), "stock": [_position(p) for p in positions]}


@router.get("/stock/alerts", tags=["stock"])
async def alerts(_: Reader, service: Service, depot_id: str | None = None) -> dict:
    """What is below its line, most urgent first: stock-outs, then fewest days of cover,
    then furthest under the minimum. The dashboard's red cells."""
    below = await service.alerts(depot_id)
    return {"count": len(below), "alerts": [_position(p) for p in below]}


class BatchOut(BaseModel):
    batch_id: int
    item_id: str
    depot_id: str
    batch: str
    expires_on: date | None
    source: str | None
    quantity: float
    received_at: datetime


@router.get("/stock/batches", response_model=list[BatchOut], tags=["stock"])
async def batches(
    _: Reader, service: Service, page: Paged, item_id: str | None = None, depot_id: str | None = None
) -> list[StockBatch]:
    """Batches with stock, first expiring first."""
    return page.of(await service.batches(item_id, depot_id))


@router.get("/stock/expiring", response_model=list[BatchOut], tags=["stock"])
async def expiring(
    _: Reader, service: Service, page: Paged, days: Annotated[int | None, Query(ge=0, le=3650)] = None
) -> list[StockBatch]:
    """Batches expired or expiring within `days` (SUPPLIES_EXPIRY_WARNING_DAYS by default)."""
    return page.of(await service.expiring(days))


@router.get("/stock/ledger", response_model=list[MovementOut], tags=["stock"])
async def ledger(
    _: Reader,
    service: Service,
    item_id: str | None = None,
    depot_id: str | None = None,
    request_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[Movement]:
    """The ledger, newest first: every movement, who made it and why."""
    return await service.ledger(item_id=item_id, depot_id=depot_id, request_id=request_id, limit=limit)


@router.get("/stock/audit", tags=["stock"])
async def audit(_: Officer, service: Service) -> dict:
    """Recompute on-hand from the ledger and compare it with the balances and batches."""
    return await service.audit()


# -- redistribution ---------------------------------------------------------------------------


class SuggestionOut(BaseModel):
    suggestion_id: int
    item_id: str
    from_depot_id: str
    to_depot_id: str
    quantity: float
    day: date
    reason: str
    status: str
    transfer_id: str | None
    created_at: datetime


@router.post("/stock/rebalance", tags=["redistribution"])
async def rebalance(_: Officer, service: Service) -> dict:
    """Propose transfers now (the job does it periodically); emits `TransferSuggested` for
    each new one and answers every open suggestion."""
    created = await service.suggest_transfers()
    open_ = await service.suggestions("open")
    return {
        "new": len(created),
        "suggestions": [SuggestionOut.model_validate(s, from_attributes=True) for s in open_],
    }


@router.get("/stock/transfers/suggestions", response_model=list[SuggestionOut], tags=["redistribution"])
async def suggestions(
    _: Reader,
    service: Service,
    page: Paged,
    status_: Annotated[Literal["open", "done"] | None, Query(alias="status")] = "open",
) -> list[TransferSuggestion]:
    return page.of(await service.suggestions(status_))


# -- reservations -------------------------------------------------------------------------------


class LineIn(RequestModel):
    item_id: str
    quantity: float


class ReservationIn(RequestModel):
    request_id: str = Field(min_length=1, max_length=60)
    lines: list[LineIn] = Field(min_length=1, max_length=100)
    depot_id: str | None = Field(default=None, description="take every line from this depot only")


class ReservationOut(BaseModel):
    request_id: str
    status: str
    lines: list[dict]
    shortages: list[dict]
    created_by: str
    created_at: datetime
    closed_at: datetime | None
    close_reason: str | None


ReservationDesk = Annotated[Principal, Depends(require(Role.supplies_officer, Role.command, Role.dispatcher))]


@router.post("/reservations", response_model=ReservationOut, tags=["reservations"])
async def reserve(body: ReservationIn, user: ReservationDesk, service: Service) -> Reservation:
    """Reserve every line or none (what a `RequestRaised` with items does). The answer says
    `held` or `rejected` with the shortages; asking again answers the same decision."""
    return await service.reserve(
        body.request_id, [(line.item_id, line.quantity) for line in body.lines], user.sub, depot_id=body.depot_id
    )


@router.get("/reservations/{request_id}", response_model=ReservationOut, tags=["reservations"])
async def get_reservation(request_id: str, _: Reader, service: Service) -> Reservation:
    return await service.reservation(request_id)


class ReleaseIn(RequestModel):
    reason: str = Field(min_length=1, max_length=150)


@router.post("/reservations/{request_id}/release", response_model=ReservationOut, tags=["reservations"])
async def release(request_id: str, body: ReleaseIn, _: ReservationDesk, service: Service) -> Reservation:
    """Give the reserved stock back (what a `RequestCancelled` does)."""
    await service.reservation(request_id)
    return await service.release(request_id, body.reason)


@router.post("/reservations/{request_id}/issue", response_model=ReservationOut, tags=["reservations"])
async def issue_reservation(request_id: str, user: ReservationDesk, service: Service) -> Reservation:
    """Turn the reservation into issues (what a `RequestFulfilled` does)."""
    await service.reservation(request_id)
    return await service.fulfil(request_id, user.sub)


# -- shaping -------------------------------------------------------------------------------------


def _position(p: Position) -> dict:
    level, status_ = p.level, p.status
    return {
        "item_id": p.item.item_id,
        "sku": p.item.sku,
        "name": p.item.name,
        "unit": p.item.unit,
        "category": p.item.category,
        "depot_id": p.depot_id,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "expired": p.expired,
        "available": level.available,
        "minimum": level.minimum,
        "daily_consumption": level.daily_consumption,
        "days_of_cover": level.days_of_cover,
        "lead_time_days": level.lead_time_days,
        "state": status_.state,
        "reason": status_.reason,
        "threshold": status_.threshold,
    }


async def _level(service: SuppliesService, item_id: str, depot_id: str) -> dict:
    positions = await service.positions(item_id=item_id, depot_id=depot_id)
    return {"stock": _position(positions[0])} if positions else {}
