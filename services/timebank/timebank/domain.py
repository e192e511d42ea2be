"""The time bank's rules, as plain functions of values: no database, no Kafka, no clock.

Money here is hours and points. Amounts are integers in each unit's smallest step
(hundredths of an hour, whole points) so sums are exact. Every movement is a transfer of
legs that sum to zero between accounts: the community pool (the issuer: it goes as far
below zero as members hold), members, merchants, the coupon escrow and the rewards store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Literal, get_args

from common.errors import Conflict, Forbidden, Invalid
from common.vocabulary import CATEGORIES, STAFF_ROLES, Role

Unit = Literal["hours", "points"]
UNITS: tuple[Unit, ...] = get_args(Unit)
# Smallest step of each unit: 1/100 hour (36 s), 1 point.
SCALE: dict[str, int] = {"hours": 100, "points": 1}

MemberKind = Literal["volunteer", "resident"]
MEMBER_KINDS: tuple[MemberKind, ...] = get_args(MemberKind)
RELATIONS = ("parent", "child", "spouse", "grandparent", "grandchild", "sibling", "guardian", "ward")
INVERSE = {
    "parent": "child", "child": "parent", "spouse": "spouse", "grandparent": "grandchild",
    "grandchild": "grandparent", "sibling": "sibling", "guardian": "ward", "ward": "guardian",
}  # fmt: skip
# What hours can buy: the service categories dispatch knows how to raise.
PURPOSES = CATEGORIES  # hours buy the services dispatch serves

# Transfer kinds, named for what happened.
EARN = "earn"  # pool -> member hours: a fulfilled request or other volunteering
AWARD = "award"  # pool -> member points for an activity
REDEEM = "redeem"  # member -> pool hours: a service bought with hours
REFUND = "refund"  # pool -> member hours: a redemption that could not be served
COUPON_PURCHASE = "coupon_purchase"  # member -> coupon escrow
COUPON_REDEMPTION = "coupon_redemption"  # escrow -> merchant, when the merchant serves it
REWARD_CLAIM = "reward_claim"  # member points -> rewards store (rice, flour, oil)
TRANSFER_KINDS = (EARN, AWARD, REDEEM, REFUND, COUPON_PURCHASE, COUPON_REDEMPTION, REWARD_CLAIM)


# -- amounts --------------------------------------------------------------------------------


def to_units(amount: float | int | str, unit: str, *, what: str | None = None) -> int:
    """A positive amount as given by a person -> integer units; refuses anything finer than a unit."""
    what = what or unit
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise Invalid(f"{what} must be a number, not {amount!r}") from exc
    if not value.is_finite():
        raise Invalid(f"{what} must be a finite number")
    if value <= 0:
        raise Invalid(f"{what} must be positive, not {amount}")
    scaled = value * SCALE[unit]
    if scaled != scaled.to_integral_value():
        step = Decimal(1) / SCALE[unit]
        raise Invalid(f"{what} must be a multiple of {step} {unit}, not {amount}")
    return int(scaled)


def from_units(units: int, unit: str) -> float | int:
    return units / SCALE[unit] if SCALE[unit] != 1 else int(units)


def credit_units(service_minutes: int, *, step_minutes: int, rounding: str, max_hours: float) -> int:
    """Hours (in units) earned for `service_minutes` of service: rounded to a step, capped.

    rounding "up" counts any started step, "down" only whole steps, "nearest" the closest
    (a half step rounds up).
    """
    if service_minutes < 0:
        raise Invalid(f"service_minutes must not be negative, not {service_minutes}")
    steps = Decimal(service_minutes) / step_minutes
    if rounding == "up":
        whole = math.ceil(steps)
    elif rounding == "down":
        whole = math.floor(steps)
    elif rounding == "nearest":
        whole = int(steps.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    else:
        raise Invalid(f"unknown rounding rule {rounding!r}; known: up, down, nearest")
    minutes = whole * step_minutes
    units = int((Decimal(minutes) * SCALE["hours"] / 60).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return min(units, int(Decimal(str(max_hours)) * SCALE["hours"]))


def points_for(activity: str, hours_units: int, *, per_hour: int, per_activity: Mapping[str, int]) -> int:
    """Points (积分) for an activity: its base plus points per hour, rounded half up."""
    if activity not in per_activity:
        raise Invalid(f"unknown activity {activity!r}; known: {', '.join(sorted(per_activity))}")
    per_hours = (Decimal(hours_units) * per_hour / SCALE["hours"]).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return per_activity[activity] + int(per_hours)


# -- accounts and transfers -----------------------------------------------------------------


def member_account(member_id: str, unit: str) -> str:
    return f"{unit}:member:{member_id}"


def pool_account(unit: str) -> str:
    return f"{unit}:pool"


def merchant_account(merchant_id: str, unit: str) -> str:
    return f"{unit}:merchant:{merchant_id}"


def escrow_account(unit: str) -> str:
    return f"{unit}:coupons"


REWARDS_ACCOUNT = "points:rewards"


@dataclass(frozen=True)
class AccountSpec:
    """An account as the ledger needs it: who owns it and how far below zero it may go."""

    account_id: str
    unit: str
    kind: str  # pool | member | merchant | escrow | rewards
    owner_id: str | None
    overdraft: int | None  # units below zero allowed; None = unlimited (the issuing pool)


def account_spec(account_id: str, member_overdraft: int = 0) -> AccountSpec:
    unit, _, rest = account_id.partition(":")
    if unit not in UNITS:
        raise Invalid(f"unknown unit in account {account_id!r}")
    kind, _, owner = rest.partition(":")
    if kind == "pool":
        return AccountSpec(account_id, unit, "pool", None, None)
    if kind == "member":
        return AccountSpec(account_id, unit, "member", owner, member_overdraft if unit == "hours" else 0)
    if kind == "merchant":
        return AccountSpec(account_id, unit, "merchant", owner, 0)
    if kind == "coupons":
        return AccountSpec(account_id, unit, "escrow", None, 0)
    if kind == "rewards":
        return AccountSpec(account_id, unit, "rewards", None, 0)
    raise Invalid(f"unknown account {account_id!r}")


@dataclass(frozen=True)
class Leg:
    account_id: str
    amount: int  # units; negative leaves the account, positive enters it


@dataclass(frozen=True)
class Transfer:
    """A movement between accounts: at least two legs of one unit, summing to zero."""

    kind: str
    unit: str
    legs: tuple[Leg, ...]

    def __post_init__(self) -> None:
        if self.kind not in TRANSFER_KINDS:
            raise ValueError(f"unknown transfer kind {self.kind!r}")
        if len(self.legs) < 2:
            raise ValueError("a transfer has at least two legs")
        if sum(leg.amount for leg in self.legs) != 0:
            raise ValueError("the legs of a transfer must sum to zero")
        if any(leg.amount == 0 for leg in self.legs):
            raise ValueError("a leg moves a non-zero amount")
        if any(not leg.account_id.startswith(self.unit + ":") for leg in self.legs):
            raise ValueError(f"every leg of a {self.unit} transfer is a {self.unit} account")

    @property
    def amount(self) -> int:
        return sum(leg.amount for leg in self.legs if leg.amount > 0)


def move(kind: str, unit: str, source: str, destination: str, amount: int) -> Transfer:
    if amount <= 0:
        raise Invalid(f"a transfer moves a positive amount, not {amount}")
    if source == destination:
        raise Invalid("a transfer needs two different accounts")
    return Transfer(kind, unit, (Leg(source, -amount), Leg(destination, amount)))


def check_funds(spec: AccountSpec, balance: int, delta: int) -> None:
    """Refuse a leg that would take an account below its overdraft."""
    if delta >= 0 or spec.overdraft is None:
        return
    if balance + delta < -spec.overdraft:
        unit = spec.unit
        have = from_units(balance, unit)
        need = from_units(-delta, unit)
        who = f"member {spec.owner_id}" if spec.kind == "member" else f"account {spec.account_id}"
        allowed = f" (overdraft {from_units(spec.overdraft, unit)})" if spec.overdraft else ""
        raise Conflict(f"{who} has {have} {unit}{allowed}: not enough to spend {need} {unit}")


# -- who may do what ------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    sub: str
    role: Role

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


def needs_review(service_minutes: int, category: str | None, cap: int, cap_by_category: dict[str, int]) -> bool:
    """Whether a volunteer's self-reported minutes are more than the category plausibly takes:
    then staff approve them before any credit."""
    return service_minutes > cap_by_category.get(category or "", cap)


MEMBER_ROLES = frozenset({Role.resident, Role.volunteer})  # the people who hold accounts


def ensure_self_or_staff(actor: Actor, member_id: str, doing: str) -> None:
    """A member acts on their own account only through a resident's or volunteer's token: a
    partner or merchant whose subject happens to equal a member id is not that member."""
    if not (actor.is_staff or (actor.role in MEMBER_ROLES and actor.sub == member_id)):
        raise Forbidden(f"only member {member_id} or community staff may {doing}")


def ensure_merchant_or_staff(actor: Actor, merchant_id: str, doing: str) -> None:
    if not (actor.is_staff or (actor.role == Role.merchant and actor.sub == merchant_id)):
        raise Forbidden(f"only merchant {merchant_id} or community staff may {doing}")


def beneficiary(member_id: str, for_member_id: str | None, family: Iterable[str]) -> str:
    """Whom a redemption serves: the member, or a family member linked to them."""
    if for_member_id is None or for_member_id == member_id:
        return member_id
    if for_member_id not in set(family):
        raise Forbidden(
            f"member {for_member_id} is not linked to {member_id} as family: "
            "ask community staff to record the family link first"
        )
    return for_member_id


def check_member(member_id: str, name: str, kind: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}", member_id):
        raise Invalid(f"member_id {member_id!r} must be 1-40 letters, digits, '_', '.', ':' or '-'")
    if not name.strip():
        raise Invalid("name must not be empty")
    if kind not in MEMBER_KINDS:
        raise Invalid(f"unknown member kind {kind!r}; known: {', '.join(MEMBER_KINDS)}")


def check_relation(member_id: str, relative_id: str, relation: str) -> str:
    if member_id == relative_id:
        raise Invalid("a member cannot be linked to themselves")
    if relation not in RELATIONS:
        raise Invalid(f"unknown relation {relation!r}; known: {', '.join(RELATIONS)}")
    return INVERSE[relation]


def check_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise Invalid(f"unknown purpose {purpose!r}; hours buy: {', '.join(PURPOSES)}")
    return purpose


def check_stock(remaining: int, what: str) -> None:
    if remaining <= 0:
        raise Conflict(f"{what} is sold out")


# -- recognition (公开表彰) ------------------------------------------------------------------


def month_bounds(month: str | None, today: date) -> tuple[date, date]:
    """'2026-11' (or this month) -> [first day, first day of the next month)."""
    if month is None:
        first = today.replace(day=1)
    else:
        match = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise Invalid(f"month {month!r} must look like 2026-11")
        first = date(int(match.group(1)), int(match.group(2)), 1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following


@dataclass(frozen=True)
class Standing:
    member_id: str
    name: str
    hours: int  # units earned in the month
    points: int  # points earned in the month


def leaderboard(standings: Iterable[Standing], size: int) -> list[tuple[int, Standing]]:
    """Most hours first, then most points, then by id; equal figures share a rank (1, 1, 3)."""
    ordered = sorted(
        (s for s in standings if s.hours > 0 or s.points > 0), key=lambda s: (-s.hours, -s.points, s.member_id)
    )
    ranked: list[tuple[int, Standing]] = []
    for position, standing in enumerate(ordered, start=1):
        previous = ranked[-1] if ranked else None
        same = previous and (previous[1].hours, previous[1].points) == (standing.hours, standing.points)
        ranked.append((previous[0] if same else position, standing))
    return ranked[:size]
