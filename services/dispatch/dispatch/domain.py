"""The dispatch rules, as plain functions of values: no database, no Kafka, no clock reads.

Priority comes from the category and the resident's tags, `due_by` from an SLA table;
matching sends a request to the right group first, then to the nearest, least loaded,
available volunteer; surge detection is a one-sided Poisson test of the latest window
against the baseline rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scipy.stats import poisson

from common.errors import Forbidden, Invalid
from common.vocabulary import CATEGORIES, PRIORITIES, STAFF_ROLES, Role

GROUPS = ("errands", "tech", "publicity", "counsellor")

# Which volunteer group serves a category. Psychological support is never an errand runner's job.
GROUP_FOR = {
    "groceries": "errands",
    "medicine": "errands",
    "medical_visit": "errands",
    "other": "errands",
    "tech_help": "tech",
    "psychological": "counsellor",
}
# Skills that qualify a volunteer outside the group (a hotline volunteer of the publicity group).
SKILL_FOR = {
    "psychological": ("counselling", "hotline"),
    "tech_help": ("tech",),
    "medical_visit": ("escort", "driving"),
}
# Categories delivered to the door in planned runs; the others are visits or calls.
DELIVERY_CATEGORIES = frozenset({"groceries", "medicine"})

CATEGORY_WEIGHT = {"medicine": 3, "medical_visit": 3, "psychological": 3, "groceries": 2, "tech_help": 1, "other": 1}
TAG_WEIGHT = {"pregnant": 2, "disabled": 2, "elderly": 1, "living_alone": 1, "chronic": 1, "mental_health": 0}
# A tag that matters more for one category than in general.
TAG_CATEGORY_BONUS = {
    ("chronic", "medicine"): 2,
    ("mental_health", "psychological"): 3,
    ("pregnant", "medical_visit"): 2,
}
# Hours from raising to due, by priority: the service-level table.
SLA_HOURS = {"urgent": 2, "high": 6, "normal": 24, "low": 48}
MAX_WINDOW_AHEAD = timedelta(days=14)

# Suggested actions for a surge, by category (the command center reads them at the meeting).
SURGE_ACTIONS = {
    "groceries": "arrange bulk supply with a partner supermarket and add delivery rounds",
    "medicine": "order a bulk refill from the pharmacy partner and add a medicine round",
    "medical_visit": "ask the community health station for extra visiting doctors",
    "psychological": "open more hotline shifts and call in counsellors",
    "tech_help": "run a group tech-help session in the building and publish a how-to",
    "other": "review the requests at the daily meeting and recruit volunteers",
}

EARTH_RADIUS_M = 6_371_000.0


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise Invalid(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
    return category


def check_group(group: str) -> str:
    if group not in GROUPS:
        raise Invalid(f"unknown group {group!r}; known: {', '.join(GROUPS)}")
    return group


# -- priority and due time ------------------------------------------------------------------


def priority_for(category: str, tags: Iterable[str]) -> str:
    """low < normal < high < urgent, from the category and who the resident is."""
    check_category(category)
    tags = set(tags)
    score = CATEGORY_WEIGHT[category] + sum(TAG_WEIGHT.get(t, 0) for t in tags)
    score += sum(bonus for (tag, cat), bonus in TAG_CATEGORY_BONUS.items() if cat == category and tag in tags)
    if score >= 6:
        return "urgent"
    if score >= 4:
        return "high"
    if score >= 2:
        return "normal"
    return "low"


def raise_priority(priority: str) -> str:
    """One step up (the green channel): a refill is never left at the back of the queue."""
    return PRIORITIES[min(PRIORITIES.index(priority) + 1, len(PRIORITIES) - 1)]


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def check_window(window: Window | None, now: datetime) -> Window | None:
    if window is None:
        return None
    if window.start.tzinfo is None or window.end.tzinfo is None:
        raise Invalid("window start and end need a time zone offset, e.g. 2026-11-21T09:00:00+08:00")
    if window.end <= window.start:
        raise Invalid(f"window ends ({window.end.isoformat()}) before it starts ({window.start.isoformat()})")
    if window.end <= now:
        raise Invalid(f"window ended already ({window.end.isoformat()})")
    if window.start > now + MAX_WINDOW_AHEAD:
        raise Invalid(f"window starts more than {MAX_WINDOW_AHEAD.days} days ahead")
    return Window(window.start.astimezone(UTC), window.end.astimezone(UTC))


def due_by(priority: str, now: datetime, window: Window | None = None) -> datetime:
    """The SLA deadline; a wished window moves it to the window's end when that is later."""
    sla = now + timedelta(hours=SLA_HOURS[priority])
    if window is not None and window.end > sla:
        return window.end
    return sla


# -- who may ask for whom -----------------------------------------------------------------

DISPATCH_STAFF = frozenset({Role.dispatcher, *STAFF_ROLES})


@dataclass(frozen=True)
class Actor:
    sub: str
    role: Role
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()


def source_for(actor: Actor, resident_id: str, grid_id: str, building_id: str) -> str:
    """Residents ask for themselves; building leads for their building; grid workers for
    their grids; dispatch staff for anyone. Returns the request's source."""
    if actor.role == Role.resident:
        if actor.sub != resident_id:
            raise Forbidden("residents raise requests only for themselves")
        return "resident"
    if actor.role == Role.building_lead:
        if building_id not in actor.building_ids:
            raise Forbidden(f"building {building_id} is not one of your buildings")
        return "building_lead"
    if actor.role == Role.grid_worker:
        if grid_id not in actor.grid_ids:
            raise Forbidden(f"grid {grid_id} is not one of your grids")
        return "staff"
    if actor.role in DISPATCH_STAFF:
        return "staff"
    raise Forbidden(f"role '{actor.role}' cannot raise requests")


# -- places -------------------------------------------------------------------------------


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def check_coordinates(lat: float, lon: float) -> tuple[float, float]:
    if not -90 <= lat <= 90:
        raise Invalid(f"lat {lat} is outside -90..90")
    if not -180 <= lon <= 180:
        raise Invalid(f"lon {lon} is outside -180..180")
    return lat, lon


# -- volunteers' availability ---------------------------------------------------------------


@dataclass(frozen=True)
class Availability:
    """A weekly window in local time: `days` are ISO weekdays (1 = Monday); empty = every day."""

    start: time
    end: time
    days: tuple[int, ...] = ()


def check_availability(windows: Sequence[Availability]) -> tuple[Availability, ...]:
    for w in windows:
        if w.end <= w.start:
            raise Invalid(f"availability {w.start:%H:%M}-{w.end:%H:%M} ends before it starts")
        bad = [d for d in w.days if not 1 <= d <= 7]
        if bad:
            raise Invalid(f"availability days must be 1 (Monday) to 7 (Sunday), not {bad}")
    return tuple(windows)


def available_between(windows: Sequence[Availability], start: datetime, end: datetime, tz: ZoneInfo) -> bool:
    """Does any weekly window overlap [start, end)? No windows means always available."""
    if not windows:
        return True
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    day = local_start.date()
    while day <= local_end.date():
        for w in windows:
            if w.days and day.isoweekday() not in w.days:
                continue
            w_start = datetime.combine(day, w.start, tzinfo=tz)
            w_end = datetime.combine(day, w.end, tzinfo=tz)
            if w_start < local_end and local_start < w_end:
                return True
        day += timedelta(days=1)
    return False


# -- matching -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    volunteer_id: str
    group: str
    skills: tuple[str, ...]
    lat: float
    lon: float
    capacity: int
    open_load: int  # requests assigned and not yet done
    recent_load: int = 0  # requests assigned in the last day: spreads work over people
    availability: tuple[Availability, ...] = ()


@dataclass(frozen=True)
class Need:
    category: str
    lat: float | None
    lon: float | None
    start: datetime
    end: datetime


# One open request weighs as much as this many metres: a volunteer 1 km further away but
# with two fewer open requests is preferred, so work spreads instead of piling on the nearest.
LOAD_WEIGHT_M = 500.0
RECENT_WEIGHT_M = 150.0
SKILL_BONUS_M = 300.0


def qualifies(category: str, group: str, skills: Iterable[str]) -> bool:
    if GROUP_FOR[category] == group:
        return True
    if category == "psychological" and group == "errands":
        return False  # never an errand runner, whatever they list
    return bool(set(SKILL_FOR.get(category, ())) & set(skills))


def match(need: Need, candidates: Sequence[Candidate], tz: ZoneInfo, exclude: Iterable[str] = ()) -> Candidate | None:
    """The best volunteer for a request, or None when nobody qualifies and is free:
    the right group (or skill), available in the request's time, under capacity; then the
    lowest cost of distance plus load."""
    excluded = set(exclude)
    best: tuple[float, str, Candidate] | None = None
    for c in candidates:
        if c.volunteer_id in excluded or not qualifies(need.category, c.group, c.skills):
            continue
        if c.open_load >= c.capacity or not available_between(c.availability, need.start, need.end, tz):
            continue
        distance = (
            haversine_m(c.lat, c.lon, need.lat, need.lon) if need.lat is not None and need.lon is not None else 0.0
        )
        cost = distance + LOAD_WEIGHT_M * c.open_load + RECENT_WEIGHT_M * c.recent_load
        if need.category in c.skills:
            cost -= SKILL_BONUS_M
        key = (cost, c.volunteer_id, c)
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best else None


# -- fulfilment ---------------------------------------------------------------------------

OPEN = frozenset({"assigned", "planned"})


def check_cancellation(status: str, resident_id: str, actor: Actor) -> None:
    """Residents cancel their own requests, dispatch staff anyone's; done is done."""
    if actor.role == Role.resident and actor.sub != resident_id:
        raise Forbidden("residents cancel only their own requests")
    if actor.role not in DISPATCH_STAFF and actor.role != Role.resident:
        raise Forbidden(f"role '{actor.role}' cannot cancel requests")
    if status in ("fulfilled", "cancelled"):
        raise Invalid(f"request is already {status}")


HAND_ASSIGNABLE = frozenset({"pending", "assigned"})  # a request with items waits for its stock first


def check_hand_assignment(status: str, run_id: str | None, actor: Actor, volunteer_active: bool) -> None:
    """A dispatcher gives a request to a volunteer of their choosing: one that is not yet in
    a run and not done, to an active volunteer."""
    if actor.role not in DISPATCH_STAFF:
        raise Forbidden(f"role '{actor.role}' cannot assign requests")
    if run_id is not None or status == "planned":
        raise Invalid(f"request is in run {run_id}: take it out by failing the stop first")
    if status not in HAND_ASSIGNABLE:
        raise Invalid(f"request is {status}: only a pending or assigned request is given by hand")
    if not volunteer_active:
        raise Invalid("the volunteer is not active")


def check_fulfilment(
    status: str, assigned_to: str | None, volunteer_id: str, actor: Actor, service_minutes: int
) -> None:
    if actor.role == Role.volunteer and actor.sub != volunteer_id:
        raise Forbidden("volunteers report only their own work")
    if actor.role not in DISPATCH_STAFF and actor.role != Role.volunteer:
        raise Forbidden(f"role '{actor.role}' cannot report fulfilment")
    if status == "fulfilled":
        raise Invalid("request is already fulfilled")
    if status not in OPEN:
        raise Invalid(f"request is {status}, not assigned: nothing to fulfil yet")
    if assigned_to != volunteer_id:
        raise Forbidden(f"request is assigned to {assigned_to}, not to {volunteer_id}")
    if not 0 <= service_minutes <= 24 * 60:
        raise Invalid(f"service_minutes {service_minutes} must be between 0 and 1440")


# -- green channel ----------------------------------------------------------------------------


def next_refills(next_due: datetime, every_days: int, lead: timedelta, now: datetime) -> list[datetime]:
    """The refill dates whose request should be raised by `now` (raised `lead` ahead)."""
    due: list[datetime] = []
    at = next_due
    while at - lead <= now and len(due) < 60:
        due.append(at)
        at += timedelta(days=every_days)
    return due


# -- hot demands --------------------------------------------------------------------------


@dataclass(frozen=True)
class SurgeTest:
    count: int
    baseline: float  # expected count in a window of the same length
    p_value: float
    surge: bool


def surge_test(count: int, baseline_counts: Sequence[int], alpha: float = 0.01, min_count: int = 3) -> SurgeTest:
    """One-sided Poisson test: is `count` in the latest window unusually high given the
    counts of the baseline windows (same length)? The baseline rate uses a half-count prior
    so a category never seen before is not a surge on its first request. `min_count` keeps
    a surge meaningful for the people who must act on it."""
    windows = max(len(baseline_counts), 1)
    rate = (sum(baseline_counts) + 0.5) / windows
    p_value = float(poisson.sf(count - 1, rate)) if count > 0 else 1.0
    return SurgeTest(
        count=count, baseline=round(rate, 4), p_value=p_value, surge=count >= min_count and p_value < alpha
    )


def window_floor(at: datetime, length: timedelta) -> datetime:
    """Windows are aligned to the epoch so every replica cuts the same windows."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    seconds = length.total_seconds()
    return epoch + timedelta(seconds=math.floor((at - epoch).total_seconds() / seconds) * seconds)


@dataclass
class DemandSeries:
    """Counts by category per time bucket and by grid, for `GET /stats/demand`."""

    buckets: dict[str, dict[str, int]] = field(default_factory=dict)
    grids: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)


def demand_series(rows: Iterable[tuple[datetime, str, str | None]], bucket: str, tz: ZoneInfo) -> DemandSeries:
    series = DemandSeries()
    for at, category, grid_id in rows:
        local = at.astimezone(tz)
        key = local.strftime("%Y-%m-%dT%H:00%z") if bucket == "hour" else local.date().isoformat()
        series.buckets.setdefault(key, {}).setdefault(category, 0)
        series.buckets[key][category] += 1
        grid = grid_id or "unknown"
        series.grids.setdefault(grid, {}).setdefault(category, 0)
        series.grids[grid][category] += 1
        series.totals[category] = series.totals.get(category, 0) + 1
    series.buckets = dict(sorted(series.buckets.items()))
    return series
