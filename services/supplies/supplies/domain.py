"""The stock rules, as plain functions of values: no database, no Kafka, no clock reads.

- Stock is what the ledger says; a batch is usable through its `expires_on` date and
  expired the day after. Issues take the batch that expires first (FEFO).
- An item at a depot is *out* when nothing usable is left to promise, *low* when what is
  available is under its static minimum or covers fewer days than the resupply lead time,
  and *ok* otherwise. An alert is raised when the state changes, never on every movement.
- Reservations take every line or none.
- Redistribution moves surplus days of cover to depots short of them, in few transfers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, get_args

from common.errors import Conflict, Invalid

# Each vocabulary once: the Literal for the API's schemas, its values for the rules.
Category = Literal["protective", "disinfection", "testing", "food", "medicine"]
DepotKind = Literal["community_station", "building_point"]
Source = Literal["government_allocation", "purchase", "donation"]
AdjustmentReason = Literal["loss", "damage", "expiry", "count_correction"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
DEPOT_KINDS: tuple[DepotKind, ...] = get_args(DepotKind)
SOURCES: tuple[Source, ...] = get_args(Source)
ADJUSTMENT_REASONS: tuple[AdjustmentReason, ...] = get_args(AdjustmentReason)
ISSUE_REASONS = ("distribution", "delivery", "internal_use", "other")
MAX_QUANTITY = 1_000_000_000
EPSILON = 1e-9

State = Literal["ok", "low", "out"]
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-\.]{0,63}$")


# -- validation --------------------------------------------------------------------------


def check_quantity(quantity: float, what: str = "quantity") -> float:
    """A quantity that moves stock: positive, finite, and not absurd."""
    if quantity is None or isinstance(quantity, bool) or not isinstance(quantity, (int, float)):
        raise Invalid(f"{what} must be a number")
    if not math.isfinite(quantity):
        raise Invalid(f"{what} {quantity} is not a finite number")
    if quantity <= 0:
        raise Invalid(f"{what} must be more than 0 (got {quantity:g})")
    if quantity > MAX_QUANTITY:
        raise Invalid(f"{what} {quantity:g} is more than {MAX_QUANTITY:g}: a typing error?")
    return round(float(quantity), 6)


def check_delta(delta: float) -> float:
    """An adjustment: signed, never zero."""
    if delta is None or not math.isfinite(delta) or delta == 0:
        raise Invalid("an adjustment's quantity must be a non-zero number: negative removes stock, positive adds")
    return math.copysign(check_quantity(abs(delta)), delta)


def check_sku(sku: str) -> str:
    sku = (sku or "").strip()
    if not _SKU.match(sku):
        raise Invalid(f"sku {sku!r} must be 1-64 letters, digits, '-', '_' or '.'")
    return sku.upper()


def check_choice(value: str | None, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise Invalid(f"unknown {what} {value!r}; known: {', '.join(choices)}")
    return value  # type: ignore[return-value]


def check_coordinates(lat: float, lon: float) -> tuple[float, float]:
    if not -90 <= lat <= 90:
        raise Invalid(f"lat {lat} is outside -90..90")
    if not -180 <= lon <= 180:
        raise Invalid(f"lon {lon} is outside -180..180")
    return lat, lon


def check_receipt(expires_on: date | None, tracks_expiry: bool, today: date, sku: str) -> None:
    if tracks_expiry and expires_on is None:
        raise Invalid(f"item {sku} tracks expiry: give expires_on for the batch")
    if expires_on is not None and expires_on < today:
        raise Invalid(f"batch expired on {expires_on}: expired stock cannot be received (today is {today})")


# -- batches and expiry ------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStock:
    batch_id: int
    batch: str
    expires_on: date | None
    quantity: float


def expired(expires_on: date | None, today: date) -> bool:
    return expires_on is not None and expires_on < today


def usable(batches: Iterable[BatchStock], today: date) -> float:
    return sum(b.quantity for b in batches if not expired(b.expires_on, today))


def fefo_order(batches: Iterable[BatchStock]) -> list[BatchStock]:
    """First expiring first; batches without an expiry last; then the oldest receipt."""
    return sorted(batches, key=lambda b: (b.expires_on is None, b.expires_on or date.max, b.batch_id))


def pick_batches(
    batches: Iterable[BatchStock], quantity: float, today: date, *, include_expired: bool = False, what: str = "issue"
) -> list[tuple[BatchStock, float]]:
    """Which batches a removal takes, first expiring first. Expired stock is only taken when
    writing it off (`include_expired`). Raises Conflict when there is not enough."""
    picks: list[tuple[BatchStock, float]] = []
    left = quantity
    for batch in fefo_order(batches):
        if left <= EPSILON:
            break
        if batch.quantity <= EPSILON or (expired(batch.expires_on, today) and not include_expired):
            continue
        take = min(batch.quantity, left)
        picks.append((batch, take))
        left = round(left - take, 9)
    if left > EPSILON:
        there = quantity - left
        raise Conflict(
            f"cannot {what} {quantity:g}: only {there:g} {'on hand' if include_expired else 'usable (unexpired)'}"
        )
    return picks


def expiring(batches: Iterable[BatchStock], today: date, warning_days: int) -> list[BatchStock]:
    """Batches with stock that expire within `warning_days` (and have not yet expired)."""
    return [
        b
        for b in batches
        if b.quantity > EPSILON and b.expires_on is not None and 0 <= (b.expires_on - today).days <= warning_days
    ]


# -- levels, thresholds and days of cover --------------------------------------------------


@dataclass(frozen=True)
class Level:
    """What is known about one item at one depot at one moment."""

    on_hand: float  # physically there, expired included
    usable: float  # unexpired
    reserved: float  # promised to deliveries
    minimum: float | None  # static minimum on hand
    daily_consumption: float  # recent average issued per day
    lead_time_days: float  # how long resupply takes

    @property
    def available(self) -> float:
        return max(round(self.usable - self.reserved, 6), 0.0)

    @property
    def days_of_cover(self) -> float | None:
        if self.daily_consumption <= EPSILON:
            return None
        return round(self.available / self.daily_consumption, 2)


@dataclass(frozen=True)
class Status:
    state: State
    reason: Literal["threshold", "days_of_cover", "out"] | None
    level: Level

    @property
    def threshold(self) -> float:
        """The line, in units: the minimum when that is what was crossed, what covers the
        lead time when that was, and otherwise the higher of the two."""
        lvl = self.level
        cover_line = round(lvl.daily_consumption * lvl.lead_time_days, 2)
        if self.reason == "threshold":
            return lvl.minimum or 0.0
        if self.reason == "days_of_cover":
            return cover_line
        return max(lvl.minimum or 0.0, cover_line)


def assess(level: Level) -> Status:
    if level.available <= EPSILON:
        return Status("out", "out", level)
    if level.minimum is not None and level.available < level.minimum:
        return Status("low", "threshold", level)
    cover = level.days_of_cover
    if cover is not None and cover < level.lead_time_days:
        return Status("low", "days_of_cover", level)
    return Status("ok", None, level)


Alert = Literal["low", "out", "restored"]


def alert_for(previous: State, current: Status) -> Alert | None:
    """The event a change of state causes: once per crossing, never on every later issue."""
    if current.state == previous:
        return None
    if current.state == "ok":
        return "restored"
    return current.state


def urgency(status: Status) -> tuple:
    """Sort key for the alerts list, most urgent first: out, then fewest days of cover,
    then furthest under the minimum."""
    level = status.level
    cover = level.days_of_cover
    ratio = level.available / status.threshold if status.threshold > 0 else 1.0
    return (0 if status.state == "out" else 1, cover if cover is not None else math.inf, ratio)


def daily_consumption(issued: float, window_days: int) -> float:
    return round(max(issued, 0.0) / window_days, 4) if window_days > 0 else 0.0


# -- reservations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    item_id: str
    depot_id: str
    quantity: float


@dataclass(frozen=True)
class ShortageLine:
    item_id: str
    requested: float
    available: float


@dataclass(frozen=True)
class ReservationPlan:
    allocations: list[Allocation] = field(default_factory=list)
    shortages: list[ShortageLine] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.shortages


def merge_lines(lines: Iterable[tuple[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for item_id, quantity in lines:
        merged[item_id] = round(merged.get(item_id, 0.0) + check_quantity(quantity, f"quantity of {item_id}"), 6)
    return merged


def plan_reservation(
    lines: Iterable[tuple[str, float]], available: dict[str, dict[str, float]], depot_id: str | None = None
) -> ReservationPlan:
    """Reserve every line or none. Each line comes from the depot with the most available
    (one pickup when it can), spilling over to the next ones; `depot_id` pins one depot."""
    wanted = merge_lines(lines)
    if not wanted:
        raise Invalid("a reservation needs at least one line")
    allocations: list[Allocation] = []
    shortages: list[ShortageLine] = []
    for item_id, quantity in wanted.items():
        per_depot = available.get(item_id, {})
        if depot_id is not None:
            per_depot = {depot_id: per_depot.get(depot_id, 0.0)}
        candidates = sorted(((q, d) for d, q in per_depot.items() if q > EPSILON), key=lambda x: (-x[0], x[1]))
        total = round(sum(q for q, _ in candidates), 6)
        if total + EPSILON < quantity:
            shortages.append(ShortageLine(item_id, quantity, total))
            continue
        left = quantity
        for there, depot in candidates:
            take = round(min(there, left), 6)
            allocations.append(Allocation(item_id, depot, take))
            left = round(left - take, 6)
            if left <= EPSILON:
                break
    if shortages:
        return ReservationPlan([], shortages)
    return ReservationPlan(allocations, [])


# -- fair distribution ---------------------------------------------------------------------


@dataclass(frozen=True)
class DepotCover:
    depot_id: str
    available: float
    daily_consumption: float
    minimum: float | None
    lead_time_days: float

    def line(self, factor: float = 1.0) -> float:
        """Units this depot needs to hold `factor` lead times of cover (and its minimum)."""
        return max(self.minimum or 0.0, self.daily_consumption * self.lead_time_days * factor)


@dataclass(frozen=True)
class Move:
    from_depot_id: str
    to_depot_id: str
    quantity: float


def suggest_transfers(
    depots: Sequence[DepotCover],
    *,
    surplus_factor: float = 2.0,
    target_factor: float = 1.5,
    min_quantity: float = 1.0,
    whole_units: bool = True,
) -> list[Move]:
    """Transfers from depots with surplus days of cover to depots under their line.

    A depot is short when it is under its minimum or covers fewer days than the lead time;
    it is brought up to `target_factor` lead times. A donor keeps `surplus_factor` lead
    times of cover. To keep the number of trips low, a need that one donor can fill alone
    gets one transfer, from the smallest donor that can (best fit); otherwise the largest
    donor gives all it can and the rest comes from the next.
    """

    def amount(x: float) -> float:
        return math.floor(x + EPSILON) if whole_units else round(x, 2)

    needs = {
        d.depot_id: amount(d.line(target_factor) - d.available) for d in depots if d.available < d.line(1.0) - EPSILON
    }
    gives = {
        d.depot_id: amount(d.available - d.line(surplus_factor))
        for d in depots
        if d.depot_id not in needs and d.available - d.line(surplus_factor) >= min_quantity
    }
    needs = {k: v for k, v in needs.items() if v >= min_quantity}
    gives = {k: v for k, v in gives.items() if v >= min_quantity}
    moves: list[Move] = []
    for to_depot in sorted(needs, key=lambda k: (-needs[k], k)):
        need = needs[to_depot]
        while need >= min_quantity and gives:
            enough = [k for k, v in gives.items() if v + EPSILON >= need]
            if enough:
                donor = min(enough, key=lambda k: (gives[k], k))
            else:
                donor = max(gives, key=lambda k: (gives[k], k))
            quantity = amount(min(need, gives[donor]))
            if quantity < min_quantity:
                break
            moves.append(Move(donor, to_depot, quantity))
            need = round(need - quantity, 6)
            gives[donor] = round(gives[donor] - quantity, 6)
            if gives[donor] < min_quantity:
                del gives[donor]
    return moves
