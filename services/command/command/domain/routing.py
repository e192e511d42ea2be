"""A problem (an event from another service, or a report by hand) routed by a rule to a kind,
a department, an owner and a priority; and the daily meeting's figures."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from command.domain import privacy
from command.domain.config import Config, Person
from command.domain.tickets import PRIORITIES, higher
from common.errors import Invalid
from common.events.base import Event


# Report and Routing are made per event and never changed; not frozen, because a frozen
# dataclass's __init__ costs several times more and a sweep makes one of each per event.
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
    owner: str | None = None  # named by command staff (a meeting's decision): instead of the rule's
    resolve_by: datetime | None = None  # a deadline named by command staff: instead of the SLA's


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


def open_key(kind: str, subject_id: str) -> str:
    """What makes "the same problem": one ticket per key while it is not closed."""
    return f"{kind}:{subject_id}"[:200]


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
    owner = _named(config, report.owner) if report.owner else config.owner_for(rule, report.grid_id, report.building_id)
    department_id = owner.department if report.owner else rule.department  # a named owner's department follows
    trigger = rule.trigger
    if report.owner and department_id in privacy.WITHHELD and privacy.sensitive(trigger, facts, report.description):
        raise Invalid(
            f"this ticket carries health data or free text: it may go to health or the community's own departments, not to {department_id}"
        )
    # Each template is filled with the facts its audience may see: an older rule naming more
    # shows "?" where a refused fact would be (check_rule refuses such rules now).
    shares = {
        d: fill(a, facts, privacy.action_facts(d, trigger)) for d, a in rule.also_share.items() if d != department_id
    }
    action = fill(rule.action, facts, privacy.action_facts(department_id, trigger)) if rule.action else None
    department = config.departments.get(department_id)
    if department and department.partner:
        shares = {department_id: action or None, **shares}
    return Routing(
        kind=rule.kind,
        department=department_id,
        owner=owner,
        priority=priority,
        title=fill(rule.title, {"kind": rule.kind, **facts}, privacy.title_facts(trigger))[:300],
        action=action,
        shares=shares,
        open_key=open_key(rule.kind, report.subject_id),
    )


def _named(config: Config, owner: str) -> Person:
    person = config.people.get(owner)
    if person is None or not person.active:
        raise Invalid(f"{owner!r} is not an active person in the directory (GET /directory/people)")
    return person


def fill(template: str | None, facts: Mapping[str, Any], allowed: frozenset[str] | None = None) -> str:
    """A rule's title or action with the facts filled in; an unknown fact, or one outside
    `allowed` (None: any), shows as "?". A field that is more than a plain name is never
    formatted: the template shows as written."""
    if not template:
        return ""
    parts = privacy.plain_parts(template)
    if parts is None:
        return template
    out = []
    for literal, name in parts:
        out.append(literal)
        if name is not None:
            value = facts.get(name) if allowed is None or name in allowed else None
            out.append("?" if value is None else _show(value))
    return "".join(out)


def _show(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) or "none"
    if isinstance(value, dict):
        return " ".join(f"{k}={_show(v)}" for k, v in value.items())
    return str(value)


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
