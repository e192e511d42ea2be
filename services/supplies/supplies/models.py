"""Supplies tables.

`movement` is the ledger: append-only, every row attributed to a user, never updated or
deleted. `stock_balance` (one row per item and depot) and `stock_batch` are projections of
it, written in the same transaction as the movements they sum; the balance row is also the
lock that serialises everything touching that item at that depot, and it remembers which
alert state was last announced so each crossing is announced once. `GET /stock/audit`
recomputes the projections from the ledger and reports any difference.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.db import utc_column
from common.outbox import InboxMessage, OutboxMessage  # noqa: F401 - part of this service's schema


class Item(SQLModel, table=True):
    __tablename__ = "item"

    item_id: str = Field(primary_key=True, max_length=40)
    sku: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    unit: str = Field(max_length=30)
    category: str = Field(max_length=20)
    tracks_expiry: bool = False
    threshold: float | None = None  # minimum on hand at every depot, unless a depot's policy says otherwise
    lead_time_days: float | None = None  # resupply lead time; the service default when unset
    created_by: str = Field(max_length=60)
    created_at: datetime = Field(sa_column=utc_column())


class Depot(SQLModel, table=True):
    __tablename__ = "depot"

    depot_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=30)
    lat: float
    lon: float
    building_id: str | None = Field(default=None, max_length=40)
    created_by: str = Field(max_length=60)
    created_at: datetime = Field(sa_column=utc_column())


class StockBalance(SQLModel, table=True):
    """Item at depot: the lock row, the on-hand projection and the last announced state."""

    __tablename__ = "stock_balance"

    item_id: str = Field(foreign_key="item.item_id", primary_key=True, max_length=40)
    depot_id: str = Field(foreign_key="depot.depot_id", primary_key=True, max_length=40)
    on_hand: float = 0.0
    reserved: float = 0.0
    minimum: float | None = None  # this depot's own minimum (overrides the item's threshold)
    lead_time_days: float | None = None  # this depot's own lead time
    alert_state: str = Field(default="ok", max_length=10)  # ok | low | out, as last announced
    alert_changed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    updated_at: datetime = Field(sa_column=utc_column())


class StockBatch(SQLModel, table=True):
    __tablename__ = "stock_batch"
    __table_args__ = (
        UniqueConstraint("item_id", "depot_id", "batch", name="uq_stock_batch"),
        Index("ix_stock_batch_expiry", "expires_on"),
    )

    batch_id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(max_length=40)
    depot_id: str = Field(max_length=40)
    batch: str = Field(max_length=64)
    expires_on: date | None = None
    source: str | None = Field(default=None, max_length=30)
    quantity: float = 0.0
    received_at: datetime = Field(sa_column=utc_column())
    expiry_warned_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


class Movement(SQLModel, table=True):
    """One line of the ledger. `quantity` is signed: what it did to on-hand at that depot."""

    __tablename__ = "movement"
    __table_args__ = (
        Index("ix_movement_item_depot_at", "item_id", "depot_id", "at"),
        Index("ix_movement_request", "request_id"),
    )

    movement_id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # receipt | issue | transfer_out | transfer_in | adjustment
    item_id: str = Field(max_length=40)
    depot_id: str = Field(max_length=40)
    batch_id: int = Field(foreign_key="stock_batch.batch_id")
    quantity: float
    source: str | None = Field(default=None, max_length=30)  # receipts: government_allocation | purchase | donation
    reason: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(default=None, max_length=60)
    transfer_id: str | None = Field(default=None, max_length=40, index=True)
    by: str = Field(max_length=60)
    at: datetime = Field(sa_column=utc_column())


class Reservation(SQLModel, table=True):
    __tablename__ = "reservation"

    request_id: str = Field(primary_key=True, max_length=60)
    status: str = Field(max_length=10)  # held | rejected | released | issued
    lines: list[dict] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )  # item_id, depot_id, quantity
    shortages: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=60)
    created_at: datetime = Field(sa_column=utc_column())
    closed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    close_reason: str | None = Field(default=None, max_length=200)


class TransferSuggestion(SQLModel, table=True):
    """A proposed move; unique per item, depots and local day, so replicas propose it once."""

    __tablename__ = "transfer_suggestion"
    __table_args__ = (
        UniqueConstraint("item_id", "from_depot_id", "to_depot_id", "day", name="uq_transfer_suggestion"),
    )

    suggestion_id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(max_length=40)
    from_depot_id: str = Field(max_length=40)
    to_depot_id: str = Field(max_length=40)
    quantity: float
    day: date
    reason: str = Field(max_length=300)
    status: str = Field(default="open", max_length=10)  # open | done
    transfer_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(sa_column=utc_column())
