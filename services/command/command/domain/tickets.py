"""A ticket's stages, priorities and deadlines, as plain functions of values. A ticket moves
through the stages of DESIGN.md:

    discovered --acknowledge--> responding --resolve--> resolved --feedback ≥ 3--> closed
        ^                                                   |
        +----------- reopened <----- feedback ≤ 2 ----------+

`reopened` is acknowledged again like `discovered`. A ticket past a deadline escalates to
its owner's supervisor, one level at a time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from common.errors import Conflict, Invalid
from common.vocabulary import PRIORITIES
from common.vocabulary import STAGES as STAGES  # re-exported as command.domain.STAGES

if TYPE_CHECKING:
    from command.domain.config import Sla


OPEN_STAGES = frozenset({"discovered", "responding", "resolved", "reopened"})  # not closed: one per problem
ACTIVE_STAGES = frozenset({"discovered", "responding", "reopened"})  # someone must act, deadlines run
AWAITING_RESPONSE = frozenset({"discovered", "reopened"})
OWNER_BY = ("grid", "building", "department")
SATISFIED_FROM = 3  # satisfaction 1–2 reopens, 3–5 closes
MAX_SOURCE_IDS = 50  # a ticket remembers its latest source events, not all of a long streak

# stage -> action -> next stage. Actions that keep the stage map to it.
TRANSITIONS: dict[str, dict[str, str]] = {
    "discovered": {"acknowledge": "responding", "reassign": "discovered", "escalate": "discovered", "update": "discovered"},
    "responding": {"resolve": "resolved", "reassign": "responding", "escalate": "responding", "update": "responding"},
    "resolved": {"feedback": "closed", "reassign": "resolved", "update": "reopened"},
    "reopened": {"acknowledge": "responding", "reassign": "reopened", "escalate": "reopened", "update": "reopened"},
    "closed": {},
}  # fmt: skip
HTTP_ACTIONS = ("acknowledge", "resolve", "feedback", "reassign")


def transition(stage: str, action: str) -> str:
    """The stage after `action`, or a 409 that says which actions the stage allows."""
    allowed = TRANSITIONS.get(stage, {})
    if action not in allowed:
        possible = [a for a in HTTP_ACTIONS if a in allowed]
        raise Conflict(
            f"cannot {action} a ticket that is {stage}; allowed: {', '.join(possible) or 'nothing (it is closed)'}",
            stage=stage,
            allowed=possible,
        )
    return allowed[action]


def feedback_stage(satisfaction: int) -> str:
    """Feedback on a resolved ticket closes it, unless the resident says it is not solved."""
    if not 1 <= satisfaction <= 5:
        raise Invalid(f"satisfaction {satisfaction} is not 1–5")
    return "closed" if satisfaction >= SATISFIED_FROM else "reopened"


def after_feedback(stage: str, satisfaction: int) -> str:
    """The stage after feedback: only a resolved ticket takes it; 1–2 reopens, 3–5 closes."""
    outcome = feedback_stage(satisfaction)
    transition(stage, "feedback")
    return outcome


def raised(priority: str, steps: int = 1) -> str:
    return PRIORITIES[min(PRIORITIES.index(priority) + steps, len(PRIORITIES) - 1)]


def higher(a: str, b: str) -> str:
    return a if PRIORITIES.index(a) >= PRIORITIES.index(b) else b


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime
    resolve_by: datetime


def deadlines(sla: Sla, at: datetime, tz: ZoneInfo) -> Deadlines:
    """Deadlines of a ticket opened (or reopened) at `at`, by its SLA entry."""
    respond_by = at + _minutes(sla.respond_minutes)
    resolve_by = at + _minutes(sla.resolve_minutes)
    if sla.resolve_same_day:
        end_of_day = _end_of_local_day(at, tz)
        respond_by = min(respond_by, end_of_day)
        resolve_by = max(min(resolve_by, end_of_day), respond_by)
    return Deadlines(respond_by, resolve_by)


@functools.lru_cache(maxsize=64)
def _minutes(count: int) -> timedelta:
    return timedelta(minutes=count)


_last_local_day: dict[tuple[ZoneInfo, Any], tuple[datetime, datetime, datetime]] = {}


def _end_of_local_day(at: datetime, tz: ZoneInfo) -> datetime:
    """23:59:59 local on `at`'s local date, in `at`'s zone. A sweep opens thousands of tickets
    on one local day: the day's bounds are remembered and reused while `at` falls inside."""
    known = _last_local_day.get((tz, at.tzinfo))
    if known is not None and known[0] <= at < known[1]:
        return known[2]
    day = at.astimezone(tz).date()
    # In `at`'s zone, so the next comparisons need no zone conversion.
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(at.tzinfo)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(at.tzinfo)
    end_of_day = datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(at.tzinfo)
    _last_local_day[(tz, at.tzinfo)] = (start, end, end_of_day)
    return end_of_day


def tighter(current: Deadlines, new: Deadlines) -> Deadlines:
    """A new event that raises priority can only bring deadlines forward, never hide a breach."""
    return Deadlines(min(current.respond_by, new.respond_by), min(current.resolve_by, new.resolve_by))


def next_check(stage: str, respond_by: datetime, resolve_by: datetime) -> datetime | None:
    """When the escalation job should next look at a ticket (None: no deadline runs)."""
    if stage in AWAITING_RESPONSE:
        return respond_by
    if stage == "responding":
        return resolve_by
    return None


def overdue(stage: str, respond_by: datetime, resolve_by: datetime, now: datetime) -> str | None:
    """Which deadline a ticket has missed: "respond", "resolve" or None."""
    if stage in AWAITING_RESPONSE and now > respond_by:
        return "respond"
    if stage in ACTIVE_STAGES and now > resolve_by:
        return "resolve"
    return None
