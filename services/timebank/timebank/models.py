"""Time-bank tables.

The ledger is `transfer` (one movement, immutable, attributed) and `ledger_entry` (its
legs, summing to zero). `account.balance` is the running total of an account's entries,
kept in the same transaction as the entries: its row is what a spender locks, so two
redemptions racing for the last hour cannot both pass the balance check. Uniqueness
carries the rules that must hold across replicas: one credit per fulfilled request, one
refund per redemption, one coupon code, one redemption per coupon.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.db import utc_column
from common.outbox import InboxMessage, OutboxMessage  # noqa: F401 - part of this service's schema


class Member(SQLModel, table=True):
    __tablename__ = "member"

    member_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    kind: str = Field(max_length=20)  # volunteer | resident
    public_recognition: bool = True  # on the monthly leaderboard unless they opt out
    opened_by: str = Field(max_length=60)  # who registered them ("dispatch" when opened by a first credit)
    created_at: datetime = Field(sa_column=utc_column())


class FamilyLink(SQLModel, table=True):
    """`relative_id` is `member_id`'s `relation` (stored both ways, so lookups are one-sided)."""

    __tablename__ = "family_link"
    __table_args__ = (UniqueConstraint("member_id", "relative_id", name="uq_family_link"),)

    link_id: int | None = Field(default=None, primary_key=True)
    member_id: str = Field(foreign_key="member.member_id", max_length=40)
    relative_id: str = Field(foreign_key="member.member_id", max_length=40)
    relation: str = Field(max_length=20)
    recorded_by: str = Field(max_length=60)
    recorded_at: datetime = Field(sa_column=utc_column())


class Account(SQLModel, table=True):
    __tablename__ = "account"
    # The last line of defence: the database itself refuses a balance below the overdraft.
    __table_args__ = (CheckConstraint("overdraft IS NULL OR balance >= -overdraft", name="ck_account_overdraft"),)

    account_id: str = Field(primary_key=True, max_length=100)
    unit: str = Field(max_length=10)  # hours (in 1/100 h) | points
    kind: str = Field(max_length=20)  # pool | member | merchant | escrow | rewards
    owner_id: str | None = Field(default=None, max_length=40, index=True)
    balance: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    overdraft: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))  # None: unlimited
    opened_at: datetime = Field(sa_column=utc_column())


class Transfer(SQLModel, table=True):
    __tablename__ = "transfer"
    __table_args__ = (Index("ix_transfer_kind_at", "kind", "created_at"),)

    transfer_id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=20)
    unit: str = Field(max_length=10)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason: str = Field(max_length=300)
    activity: str | None = Field(default=None, max_length=40)
    actor: str = Field(max_length=60)  # who caused it: a person's id, or "dispatch" for events
    request_id: str | None = Field(default=None, max_length=60, index=True)
    redemption_id: str | None = Field(default=None, max_length=40)
    coupon_id: str | None = Field(default=None, max_length=40)
    source_event_id: str | None = Field(default=None, max_length=36)
    # Makes a movement happen once whatever the delivery: "fulfilled:<request_id>", "refund:<redemption_id>".
    idempotency_key: str | None = Field(default=None, max_length=120, unique=True)
    created_at: datetime = Field(sa_column=utc_column())


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"
    __table_args__ = (Index("ix_ledger_entry_account", "account_id", "entry_id"),)

    # BigInteger on PostgreSQL, INTEGER (the rowid) on SQLite, so both autoincrement.
    entry_id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    )
    transfer_id: str = Field(foreign_key="transfer.transfer_id", max_length=36, index=True)
    account_id: str = Field(foreign_key="account.account_id", max_length=100)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    balance_after: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())


class Redemption(SQLModel, table=True):
    __tablename__ = "redemption"

    redemption_id: str = Field(primary_key=True, max_length=40)
    member_id: str = Field(foreign_key="member.member_id", max_length=40, index=True)
    for_member_id: str = Field(max_length=40)
    hours: int = Field(sa_column=Column(BigInteger, nullable=False))
    purpose: str = Field(max_length=30)
    details: str | None = Field(default=None, max_length=500)
    request_id: str = Field(max_length=60, unique=True)  # pre-generated: dispatch raises it
    status: str = Field(default="requested", max_length=20)  # requested | fulfilled | refunded
    status_reason: str | None = Field(default=None, max_length=300)
    transfer_id: str = Field(max_length=36)
    refund_transfer_id: str | None = Field(default=None, max_length=36)
    created_by: str = Field(max_length=60)
    created_at: datetime = Field(sa_column=utc_column())
    updated_at: datetime = Field(sa_column=utc_column())


class Merchant(SQLModel, table=True):
    __tablename__ = "merchant"

    merchant_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    address: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_column=utc_column())


class Offer(SQLModel, table=True):
    __tablename__ = "offer"

    offer_id: str = Field(primary_key=True, max_length=40)
    merchant_id: str = Field(foreign_key="merchant.merchant_id", max_length=40, index=True)
    title: str = Field(max_length=200)
    unit: str = Field(max_length=10)  # hours | points
    price: int = Field(sa_column=Column(BigInteger, nullable=False))
    remaining: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())


class Coupon(SQLModel, table=True):
    __tablename__ = "coupon"

    coupon_id: str = Field(primary_key=True, max_length=40)
    code: str = Field(max_length=64, unique=True)  # secrets.token_urlsafe: the bearer secret
    offer_id: str = Field(foreign_key="offer.offer_id", max_length=40)
    merchant_id: str = Field(max_length=40, index=True)
    member_id: str = Field(foreign_key="member.member_id", max_length=40, index=True)
    unit: str = Field(max_length=10)
    price: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default="issued", max_length=20)  # issued | redeemed
    issued_at: datetime = Field(sa_column=utc_column())
    redeemed_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    redeemed_by: str | None = Field(default=None, max_length=60)


class Reward(SQLModel, table=True):
    """An item of the rewards catalog (rice, flour, oil) bought with points."""

    __tablename__ = "reward"

    reward_id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    points: int = Field(sa_column=Column(Integer, nullable=False))
    remaining: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())


class RewardClaim(SQLModel, table=True):
    __tablename__ = "reward_claim"

    claim_id: str = Field(primary_key=True, max_length=40)
    reward_id: str = Field(foreign_key="reward.reward_id", max_length=40)
    member_id: str = Field(foreign_key="member.member_id", max_length=40, index=True)
    points: int = Field(sa_column=Column(Integer, nullable=False))
    transfer_id: str = Field(max_length=36)
    claimed_at: datetime = Field(sa_column=utc_column())


class RaisedRequest(SQLModel, table=True):
    """A request dispatch raised: only these earn hours when fulfilled. A fulfilment reporting
    more service minutes than its category's cap waits here for staff approval."""

    __tablename__ = "raised_request"

    request_id: str = Field(primary_key=True, max_length=60)
    category: str | None = Field(default=None, max_length=30)
    raised_at: datetime = Field(sa_column=utc_column())
    status: str = Field(default="raised", max_length=20, index=True)  # raised | awaiting_approval | credited
    volunteer_id: str | None = Field(default=None, max_length=40)
    service_minutes: int | None = None
    reviewed_by: str | None = Field(default=None, max_length=60)
