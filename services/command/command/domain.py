"""The command center's rules, as plain functions of values: no database, no Kafka, no clock.

A problem (an event from another service, or a report by hand) is *routed* by a rule kept
as configuration to a kind, a department, an owner and a priority; the SLA table gives its
deadlines; the ticket then moves through the stages of DESIGN.md:

    discovered --acknowledge--> responding --resolve--> resolved --feedback ≥ 3--> closed
        ^                                                   |
        +----------- reopened <----- feedback ≤ 2 ----------+

`reopened` is acknowledged again like `discovered`. A ticket past a deadline escalates to
its owner's supervisor, one level at a time.
"""

from __future__ import annotations

import functools
import re
import statistics
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.errors import Conflict, Forbidden, Invalid
from common.events.base import Event
from common.events.partner import (
    HealthTicketShared,
    PartnerEvent,
    PoliceTicketShared,
    PropertyTicketShared,
)
from common.vocabulary import PRIORITIES, STAFF_ROLES, Role
from common.vocabulary import STAGES as STAGES  # command.domain.STAGES, as its readers know it

OPEN_STAGES = frozenset({"discovered", "responding", "resolved", "reopened"})  # not closed: one per problem
ACTIVE_STAGES = frozenset({"discovered", "responding", "reopened"})  # someone must act, deadlines run
AWAITING_RESPONSE = frozenset({"discovered", "reopened"})
OWNER_BY = ("grid", "building", "department")
SATISFIED_FROM = 3  # satisfaction 1–2 reopens, 3–5 closes

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


# -- configuration: rules, SLA, directory ---------------------------------------------------


@dataclass(frozen=True)
class PriorityRaise:
    field: str
    priority: str
    at_least: float | None = None
    any_of: tuple[str, ...] = ()

    def matches(self, facts: Mapping[str, Any]) -> bool:
        value = facts.get(self.field)
        if value is None:
            return False
        if self.at_least is not None:
            try:
                return float(value) >= self.at_least
            except (TypeError, ValueError):
                return False
        values = value if isinstance(value, list | tuple | set) else [value]
        return bool(set(map(str, values)) & set(self.any_of))


@dataclass(frozen=True)
class Rule:
    trigger: str  # "event:CheckInMissed" or "category:complaint"
    kind: str
    department: str
    owner_by: str
    priority: str
    title: str = "{kind}"
    action: str | None = None
    raise_priority: tuple[PriorityRaise, ...] = ()
    also_share: Mapping[str, str] = field(default_factory=dict)  # partner department -> action
    enabled: bool = True

    def priority_for(self, facts: Mapping[str, Any]) -> str:
        for candidate in self.raise_priority:
            if candidate.matches(facts):
                return higher(candidate.priority, self.priority)
        return self.priority


@dataclass(frozen=True)
class Sla:
    kind: str  # or "*"
    priority: str  # or "*"
    respond_minutes: int
    resolve_minutes: int
    resolve_same_day: bool = False


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    role: str
    department: str
    phone: str | None = None
    supervisor_id: str | None = None
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class Department:
    department_id: str
    name: str
    partner: bool = False
    default_owner: str | None = None


@dataclass(frozen=True)
class Config:
    """Everything routing needs, as loaded from the tables an admin edits."""

    rules: Mapping[str, Rule]
    sla: tuple[Sla, ...]
    people: Mapping[str, Person]
    departments: Mapping[str, Department]
    # Answers already worked out from this (immutable) configuration: a sweep asks the same
    # few questions thousands of times (which SLA, which owner for this building).
    _answers: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def rule(self, trigger: str) -> Rule | None:
        rule = self.rules.get(trigger)
        return rule if rule and rule.enabled else None

    def sla_for(self, kind: str, priority: str) -> Sla:
        key = ("sla", kind, priority)
        sla = self._answers.get(key)
        if sla is None:
            sla = self._answers[key] = self._sla_for(kind, priority)
        return sla

    def _sla_for(self, kind: str, priority: str) -> Sla:
        by_key = {(s.kind, s.priority): s for s in self.sla}
        for key in ((kind, priority), (kind, "*"), ("*", priority), ("*", "*")):
            if key in by_key:
                return by_key[key]
        return Sla("*", "*", 240, 2880)

    def supervisor_of(self, person_id: str) -> Person | None:
        person = self.people.get(person_id)
        if person is None or not person.supervisor_id:
            return None
        return self.people.get(person.supervisor_id)

    def owner_for(self, rule: Rule, grid_id: str | None, building_id: str | None) -> Person:
        """Who owns a new ticket: the grid worker of the grid (or of the building), else the
        department's default owner. Every ticket gets a named owner."""
        key = ("owner", rule.owner_by, rule.department, grid_id, building_id)
        owner = self._answers.get(key)
        if owner is None:
            owner = self._answers[key] = self._owner_for(rule, grid_id, building_id)
        return owner

    def _owner_for(self, rule: Rule, grid_id: str | None, building_id: str | None) -> Person:
        if rule.owner_by in ("grid", "building"):
            workers = [p for p in self.people.values() if p.active and p.role == "grid_worker"]
            if building_id:
                for person in workers:
                    if building_id in person.building_ids:
                        return person
            if grid_id:
                for person in sorted(workers, key=lambda p: p.person_id):
                    if grid_id in person.grid_ids:
                        return person
        return self.default_owner(rule.department)

    def default_owner(self, department_id: str) -> Person:
        department = self.departments.get(department_id)
        if department and department.default_owner in self.people:
            return self.people[department.default_owner]
        members = sorted((p for p in self.people.values() if p.department == department_id and p.active), key=lambda p: p.person_id)
        if members:
            return members[0]
        return Person(person_id=f"{department_id}-duty", name=f"{department_id} duty", role="duty_officer", department=department_id)


def check_rule(rule: Rule, departments: Iterable[str]) -> Rule:
    departments = set(departments)
    if not re.fullmatch(r"(event|category):[A-Za-z_][A-Za-z0-9_]*", rule.trigger):
        raise Invalid(f"trigger {rule.trigger!r} is not event:<EventType> or category:<name>")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", rule.kind):
        raise Invalid(f"kind {rule.kind!r} must be lower_snake_case, at most 40 characters")
    if rule.department not in departments:
        raise Invalid(f"unknown department {rule.department!r}; known: {', '.join(sorted(departments))}")
    if rule.kind in HEALTH_KINDS and rule.department in NEUTRAL_KIND:
        raise Invalid(f"a {rule.kind} ticket carries health data: {rule.department} may be told of it (also_share), not own it")
    if rule.owner_by not in OWNER_BY:
        raise Invalid(f"owner_by {rule.owner_by!r} is not one of {', '.join(OWNER_BY)}")
    for priority in (rule.priority, *(r.priority for r in rule.raise_priority)):
        if priority not in PRIORITIES:
            raise Invalid(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    for entry in rule.raise_priority:
        if (entry.at_least is None) == (not entry.any_of):
            raise Invalid(f"raise_priority on {entry.field!r} needs exactly one of at_least or any_of")
    for partner in rule.also_share:
        if partner not in departments:
            raise Invalid(f"also_share names unknown department {partner!r}")
    return rule


def check_sla(sla: Sla) -> Sla:
    if sla.priority != "*" and sla.priority not in PRIORITIES:
        raise Invalid(f"priority {sla.priority!r} is not one of {', '.join(PRIORITIES)} or *")
    if sla.respond_minutes <= 0 or sla.resolve_minutes <= 0:
        raise Invalid("respond_minutes and resolve_minutes must be positive")
    if sla.respond_minutes > sla.resolve_minutes:
        raise Invalid(f"respond_minutes {sla.respond_minutes} is after resolve_minutes {sla.resolve_minutes}")
    return sla


def check_person(person: Person, people: Mapping[str, Person], departments: Iterable[str]) -> Person:
    departments = set(departments)
    if person.department not in departments:
        raise Invalid(f"unknown department {person.department!r}; known: {', '.join(sorted(departments))}")
    if person.supervisor_id:
        if person.supervisor_id == person.person_id:
            raise Invalid("a person cannot supervise themselves")
        if person.supervisor_id not in people:
            raise Invalid(f"unknown supervisor {person.supervisor_id!r}: add them to the directory first")
        seen = {person.person_id}
        boss = people.get(person.supervisor_id)
        while boss is not None:
            if boss.person_id in seen:
                raise Invalid(f"supervisor {person.supervisor_id!r} would make a loop of supervisors")
            seen.add(boss.person_id)
            boss = people.get(boss.supervisor_id) if boss.supervisor_id else None
    return person


# -- problems into tickets ----------------------------------------------------------------


# Report and Routing are made per event and never changed; they are not frozen because a
# frozen dataclass's __init__ sets each field through object.__setattr__ (~4 µs a Report),
# and a sweep makes one of each per missed check-in.
@dataclass(slots=True)
class Report:
    """A problem as the command center sees it, from an event or a report by hand."""

    trigger: str
    subject_id: str  # with the kind, what makes "the same problem"
    facts: Mapping[str, Any] = field(default_factory=dict)
    grid_id: str | None = None
    building_id: str | None = None
    resident_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    description: str | None = None
    reported_by: str | None = None
    priority: str | None = None  # asked for by hand: never below the rule's


@dataclass(slots=True)
class Routing:
    kind: str
    department: str
    owner: Person
    priority: str
    title: str
    action: str | None
    shares: Mapping[str, str]  # partner department -> action
    open_key: str


def route(report: Report, config: Config) -> Routing | None:
    """Which ticket a report belongs to, or None when no rule routes it."""
    rule = config.rule(report.trigger)
    if rule is None:
        return None
    facts = {
        **report.facts,
        "grid_id": report.grid_id,
        "building_id": report.building_id,
        "resident_id": report.resident_id,
        "description": report.description,
    }
    priority = rule.priority_for(facts)
    if report.priority:
        if report.priority not in PRIORITIES:
            raise Invalid(f"priority {report.priority!r} is not one of {', '.join(PRIORITIES)}")
        priority = higher(report.priority, priority)
    shares = {d: fill(a, facts) for d, a in rule.also_share.items() if d != rule.department}
    department = config.departments.get(rule.department)
    if department and department.partner:
        shares = {rule.department: fill(rule.action or "", facts) or None, **shares}
    return Routing(
        kind=rule.kind,
        department=rule.department,
        owner=config.owner_for(rule, report.grid_id, report.building_id),
        priority=priority,
        title=fill(rule.title, {"kind": rule.kind, **facts})[:300],
        action=fill(rule.action, facts) if rule.action else None,
        shares=shares,
        open_key=f"{rule.kind}:{report.subject_id}"[:200],
    )


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def fill(template: str | None, facts: Mapping[str, Any]) -> str:
    """A rule's title or action with the facts filled in; an unknown fact shows as "?"."""
    if not template:
        return ""
    try:
        parts = _parts(template)
        if parts is None:  # format specs, conversions or indexes: str.format's own way
            shown = _Blank({k: _show(facts[k]) for k in _placeholders(template) if facts.get(k) is not None})
            return template.format_map(shown)
    except (ValueError, IndexError, AttributeError):
        return template
    out = []
    for literal, name in parts:
        out.append(literal)
        if name is not None:
            value = facts.get(name)
            out.append("?" if value is None else _show(value))
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _parts(template: str) -> tuple[tuple[str, str | None], ...] | None:
    """A template as (text, fact name) pairs, parsed once (templates are few; a sweep fills
    thousands); None when a field is more than a plain name."""
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None and (spec or conversion or not name.isidentifier()):
            return None
        parts.append((literal, name))
    return tuple(parts)


@functools.lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    """The fact names a template uses."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _show(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={_show(v)}" for k, v in value.items())
    return str(value)


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


@dataclass(frozen=True)
class Escalation:
    level: int
    owner: Person  # who owns it now: the supervisor, or the same owner at the top of the chain
    previous_owner: str
    priority: str
    breach: str  # respond | resolve
    next_check: datetime


def escalate(
    *,
    stage: str,
    owner: str,
    priority: str,
    level: int,
    respond_by: datetime,
    resolve_by: datetime,
    now: datetime,
    config: Config,
    repeat: timedelta,
    max_level: int,
) -> Escalation | None:
    """The next escalation of a ticket, if it is due: one level up the supervisor chain and
    one step up in priority; the next check comes `repeat` later if nothing happens."""
    breach = overdue(stage, respond_by, resolve_by, now)
    if breach is None or level >= max_level:
        return None
    supervisor = config.supervisor_of(owner)
    current = config.people.get(owner) or Person(owner, owner, "unknown", "command")
    new_owner = supervisor or current
    return Escalation(
        level=level + 1,
        owner=new_owner,
        previous_owner=owner,
        priority=raised(priority),
        breach=breach,
        next_check=now + repeat,
    )


# -- who may see and do what -------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    sub: str
    role: Role
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()
    department: str | None = None


ROLE_DEPARTMENT = {"supplies_officer": "supplies", "dispatcher": "dispatch"}
REPORTER_ROLES = frozenset(
    {"resident", "building_lead", "grid_worker", "volunteer", "supplies_officer", "dispatcher", "command", "admin", "partner"}
)


@dataclass(frozen=True)
class TicketScope:
    """What visibility depends on, for one ticket."""

    owner: str
    department: str
    grid_id: str | None
    building_id: str | None
    resident_id: str | None
    reported_by: str | None = None


def can_see(actor: Actor, ticket: TicketScope) -> bool:
    if actor.role in STAFF_ROLES or ticket.owner == actor.sub:
        return True
    if actor.role == "resident":
        return ticket.resident_id == actor.sub or (ticket.reported_by == actor.sub and ticket.resident_id is None)
    if actor.role == "partner":
        return actor.department is not None and ticket.department == actor.department
    if actor.role == "grid_worker":
        return ticket.grid_id is not None and ticket.grid_id in actor.grid_ids
    if actor.role == "building_lead":
        return ticket.building_id is not None and ticket.building_id in actor.building_ids
    if actor.role in ROLE_DEPARTMENT:
        return ticket.department == ROLE_DEPARTMENT[actor.role]
    return False


def can_work(actor: Actor, ticket: TicketScope) -> bool:
    """Acknowledge, resolve: the owner, their department, the grid's workers, staff."""
    if actor.role in ("resident", "building_lead", "volunteer"):
        return False
    return can_see(actor, ticket)


def ensure_can_work(actor: Actor, ticket: TicketScope, action: str) -> None:
    if not can_see(actor, ticket):
        raise Forbidden("you may not see this ticket")
    if not can_work(actor, ticket):
        raise Forbidden(f"role {actor.role!r} may not {action} tickets; the owner, their department or staff may")


def ensure_can_reassign(actor: Actor, ticket: TicketScope) -> None:
    if actor.role in STAFF_ROLES:
        return
    if actor.role == "partner" and ticket.department == actor.department:
        return
    if ticket.owner == actor.sub and actor.role not in ("resident", "volunteer"):
        return
    raise Forbidden("only command staff, the owner, or the owning partner department may reassign a ticket")


def ensure_can_hand_over(actor: Actor, kind: str, to: Person) -> None:
    """Where a ticket may go: a partner hands over within its own department, and a health
    ticket never goes to a partner that must not see health data (property, police)."""
    if actor.role == "partner" and to.department != actor.department:
        raise Forbidden(f"a partner hands tickets over within its own department ({actor.department}); command staff may move them elsewhere")
    if kind in HEALTH_KINDS and to.department in NEUTRAL_KIND:
        raise Invalid(f"a {kind} ticket carries health data: it may go to health or the community's own departments, not to {to.department}")


def withholds_health(actor: Actor, kind: str) -> bool:
    """A partner outside health sees a health ticket as its topic shows it (no health data),
    however the ticket reached it (as its owner after an escalation, say)."""
    return actor.role == "partner" and actor.department != "health" and kind in HEALTH_KINDS


def without_health(ticket: Mapping[str, Any], department: str | None) -> dict[str, Any]:
    """A health ticket as shown to such a partner: the neutral kind, the building and the
    action; nothing about the resident, their health or what was said about it."""
    kind = NEUTRAL_KIND.get(department or "", "withheld")
    return {**ticket, "kind": kind, "category": None, "title": f"{kind}: {ticket.get('action') or 'see the command center'}",
            "description": None, "facts": {}, "subject_id": ticket["ticket_id"], "resident_id": None, "source_event_ids": [],
            "reported_by": None, "resolution": None, "feedback_comment": None}  # fmt: skip


def ensure_can_give_feedback(actor: Actor, ticket: TicketScope) -> str:
    """Feedback comes from the resident, or is recorded on their behalf; returns "resident" or "on_behalf"."""
    if actor.role == "resident":
        if actor.sub == ticket.resident_id or (ticket.resident_id is None and ticket.reported_by == actor.sub):
            return "resident"
        raise Forbidden("residents give feedback only on tickets about themselves")
    if actor.role in STAFF_ROLES or (actor.role == "grid_worker" and can_see(actor, ticket)):
        return "on_behalf"
    raise Forbidden(f"role {actor.role!r} may not record feedback; the resident, a grid worker of the grid or staff may")


# -- figures for the daily meeting ---------------------------------------------------------


def median_minutes(durations: Iterable[timedelta]) -> float | None:
    values = [d.total_seconds() / 60 for d in durations]
    return round(statistics.median(values), 1) if values else None


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def meeting_window(day: date, meeting_time: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[previous meeting, this meeting): what is new since the last meeting, in UTC."""
    this = datetime.combine(day, meeting_time, tzinfo=tz)
    previous = datetime.combine(day - timedelta(days=1), meeting_time, tzinfo=tz)
    return previous.astimezone(ZoneInfo("UTC")), this.astimezone(ZoneInfo("UTC"))


def with_priority(routing: Routing, priority: str) -> Routing:
    return replace(routing, priority=priority)


# -- events in, partner messages out ------------------------------------------------------

# Where a located problem shows on the heat map; other tickets show as their kind.
SIGNAL_KINDS = {"HealthAnomalyReported": "fever", "CheckInMissed": "missed_checkin", "RequestRaised": "request"}


def report_from_event(event: Event) -> Report:
    """An event from another service as a problem: the subject is the event's aggregate id."""
    facts = event.model_dump(mode="json", exclude_none=True)
    return Report(
        trigger=f"event:{event.event_type()}",
        subject_id=event.subject(),
        facts=facts,
        grid_id=facts.get("grid_id"),
        building_id=facts.get("building_id"),
        resident_id=facts.get("resident_id"),
        lat=facts.get("lat"),
        lon=facts.get("lon"),
    )


# What each partner may see of a ticket's facts: nothing else leaves the command center.
HEALTH_FACTS = ("name", "unit", "room", "phone", "temperature_c", "symptoms", "date")
# Kinds that are health data themselves ("a fever in building 5"): other partners see a neutral kind.
HEALTH_KINDS = frozenset({"fever", "health_concern"})
NEUTRAL_KIND = {"property": "building_action", "police": "public_order"}


def partner_event(department: str, ticket: Mapping[str, Any], action: str | None) -> PartnerEvent | None:
    """The minimised message for a partner department about a ticket, or None if the
    department has no partner topic. Property and police messages have no health field."""
    common = {
        "ticket_id": ticket["ticket_id"],
        "kind": ticket["kind"],
        "stage": ticket["stage"],
        "priority": ticket["priority"],
        "respond_by": ticket["respond_by"],
        "resolve_by": ticket["resolve_by"],
        "at": ticket["at"],
        "action": action,
    }
    facts = ticket.get("facts") or {}
    if department == "health":
        shown = {k: facts[k] for k in HEALTH_FACTS if facts.get(k) is not None}
        return HealthTicketShared(
            **common, resident_id=ticket.get("resident_id"), building_id=ticket.get("building_id"), **shown
        )
    if department in NEUTRAL_KIND and common["kind"] in HEALTH_KINDS:
        common["kind"] = NEUTRAL_KIND[department]
    if department == "property":
        return PropertyTicketShared(**common, building_id=ticket.get("building_id"))
    if department == "police":
        summary = None if ticket["kind"] in HEALTH_KINDS else ticket.get("description")
        return PoliceTicketShared(**common, building_id=ticket.get("building_id"), summary=summary)
    return None
