"""What each transition of a ticket changes, decided from the ticket's state alone: the
fields, the event and the history's line. The use cases load, apply and save."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from command.domain import privacy
from command.domain.access import (
    Actor,
    TicketScope,
    ensure_can_give_feedback,
    ensure_can_hand_over,
    ensure_can_reassign,
    ensure_can_work,
)
from command.domain.config import Config, Person
from command.domain.routing import Report, Routing, fill
from command.domain.tickets import Deadlines, after_feedback, deadlines, next_check, overdue, raised, transition
from common.errors import Invalid
from common.events.command import (
    TicketAcknowledged,
    TicketClosed,
    TicketEscalated,
    TicketOpened,
    TicketReassigned,
    TicketReopened,
    TicketResolved,
    TicketTransition,
)


@dataclass(frozen=True)
class TicketState:
    """What a transition reads of a ticket."""

    ticket_id: str
    stage: str
    owner: str
    department: str
    kind: str
    priority: str
    respond_by: datetime
    resolve_by: datetime
    scope: TicketScope
    action: str | None = None
    shares: Mapping[str, str | None] = field(default_factory=dict)
    escalation_level: int = 0
    reopen_count: int = 0
    trigger: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def sensitive(self) -> bool:
        return privacy.sensitive(self.trigger, self.facts, self.description)


@dataclass(frozen=True)
class LogLine:
    """The history's entry for a transition."""

    action: str
    from_stage: str | None
    to_stage: str
    by: str
    at: datetime
    owner: str
    note: str | None = None
    satisfaction: int | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class Change:
    fields: Mapping[str, Any]  # the ticket's columns that change, with their new values
    event: TicketTransition
    log: LogLine
    counted_as: str  # the transitions metric's action


def _change(
    ticket: TicketState, fields: dict[str, Any], action: str, by: str, now: datetime, event: type[TicketTransition],
    *, note: str | None = None, satisfaction: int | None = None, event_id: str | None = None,
    counted_as: str | None = None, **event_fields: Any,
) -> Change:  # fmt: skip
    stage, owner = fields.get("stage", ticket.stage), fields.get("owner", ticket.owner)
    if satisfaction is not None:  # feedback: the event carries it too
        event_fields["satisfaction"] = satisfaction
    return Change(
        fields=fields,
        event=event(ticket_id=ticket.ticket_id, stage=stage, owner=owner, at=now, by=by, **event_fields),
        log=LogLine(action, ticket.stage, stage, by, now, owner, note, satisfaction, event_id),
        counted_as=counted_as or action,
    )


def opened(
    ticket_id: str, report: Report, routing: Routing, due: Deadlines, now: datetime, by: str, event_ids: list[str]
) -> tuple[dict[str, Any], TicketOpened]:
    """A new ticket's row and its event. Columns that start empty are left out (NULL by default)."""
    trigger = report.trigger
    row = dict(
        ticket_id=ticket_id, open_key=routing.open_key, kind=routing.kind,
        category=trigger.removeprefix("category:") if trigger.startswith("category:") else None, trigger=trigger,
        subject_id=report.subject_id, title=routing.title, description=report.description, action=routing.action,
        stage="discovered", priority=routing.priority, department=routing.department, owner=routing.owner.person_id,
        grid_id=report.grid_id, building_id=report.building_id, resident_id=report.resident_id, lat=report.lat,
        lon=report.lon, facts=dict(report.facts), shares=dict(routing.shares), source_event_ids=event_ids, event_count=1,
        reported_by=report.reported_by, opened_by=by[:60], opened_owner=routing.owner.person_id,
        respond_by=due.respond_by, resolve_by=due.resolve_by, next_check_at=due.respond_by, opened_at=now,
        updated_at=now, escalation_level=0, reopen_count=0,
    )  # fmt: skip
    event = TicketOpened(
        ticket_id=ticket_id, kind=routing.kind, priority=routing.priority, owner=row["owner"],
        department=routing.department, respond_by=due.respond_by, resolve_by=due.resolve_by, source_event_ids=event_ids,
        subject_id=report.subject_id, title=routing.title, grid_id=report.grid_id, building_id=report.building_id,
        category=row["category"], resident_id=report.resident_id,
    )  # fmt: skip
    return row, event


def acknowledge(ticket: TicketState, actor: Actor, now: datetime, note: str | None = None) -> Change:
    ensure_can_work(actor, ticket.scope, "acknowledge")
    stage = transition(ticket.stage, "acknowledge")
    fields = dict(stage=stage, acknowledged_at=now, acknowledged_by=actor.sub,
                  next_check_at=next_check(stage, ticket.respond_by, ticket.resolve_by), updated_at=now)  # fmt: skip
    return _change(ticket, fields, "acknowledge", actor.sub, now, TicketAcknowledged, note=note)


def resolution_text(resolution: str) -> str:
    if not resolution.strip():
        raise Invalid("resolution must say what was done")
    return resolution.strip()


def resolve(ticket: TicketState, actor: Actor, now: datetime, resolution: str) -> Change:
    text = resolution_text(resolution)
    ensure_can_work(actor, ticket.scope, "resolve")
    stage = transition(ticket.stage, "resolve")
    fields = dict(
        stage=stage, resolved_at=now, resolved_by=actor.sub, resolution=text, next_check_at=None, updated_at=now
    )
    # What was done stays in the history; command.events.v1 is told only that it was resolved.
    return _change(ticket, fields, "resolve", actor.sub, now, TicketResolved, note=resolution)


def reopened_fields(ticket: TicketState, priority: str, config: Config, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """A reopened ticket gets fresh deadlines and climbs the supervisor chain from the first level again."""
    due = deadlines(config.sla_for(ticket.kind, priority), now, tz)
    return dict(respond_by=due.respond_by, resolve_by=due.resolve_by, next_check_at=due.respond_by,
                reopen_count=ticket.reopen_count + 1, escalation_level=0, acknowledged_at=None, acknowledged_by=None,
                resolved_at=None, resolved_by=None)  # fmt: skip


def feedback(
    ticket: TicketState,
    actor: Actor,
    now: datetime,
    satisfaction: int,
    comment: str | None,
    config: Config,
    tz: ZoneInfo,
) -> Change:
    """Feedback on a resolved ticket: 3–5 closes it, 1–2 reopens it with fresh deadlines."""
    who = ensure_can_give_feedback(actor, ticket.scope)
    outcome = after_feedback(ticket.stage, satisfaction)
    note = comment if who == "resident" else f"recorded on the resident's behalf: {comment or ''}".strip()
    fields: dict[str, Any] = dict(
        satisfaction=satisfaction, feedback_comment=comment, feedback_by=actor.sub, updated_at=now
    )
    common = dict(note=note, satisfaction=satisfaction, counted_as=f"feedback_{outcome}")  # the comment: history only
    if outcome == "closed":
        # open_key cleared: the next event about this subject opens a new ticket
        fields.update(stage="closed", closed_at=now, open_key=None, next_check_at=None)
        return _change(ticket, fields, "feedback", actor.sub, now, TicketClosed, **common)
    fields.update(stage="reopened", **reopened_fields(ticket, ticket.priority, config, now, tz))
    return _change(
        ticket,
        fields,
        "feedback",
        actor.sub,
        now,
        TicketReopened,
        reason=f"satisfaction {satisfaction}: not solved",
        **common,
    )


def reopen(
    ticket: TicketState, by: str, now: datetime, trigger: str, event_id: str | None, config: Config, tz: ZoneInfo
) -> Change:
    """An event about a resolved ticket's problem: the problem is back."""
    stage = transition(ticket.stage, "update")
    fields = dict(stage=stage, **reopened_fields(ticket, ticket.priority, config, now, tz))
    return _change(ticket, fields, "reopen", by, now, TicketReopened, note=f"{trigger} again after resolution",
                   event_id=event_id, reason="reported again after it was resolved")  # fmt: skip


def assignee(config: Config, owner: str) -> Person:
    person = config.people.get(owner)
    if person is None or not person.active:
        raise Invalid(f"{owner!r} is not an active person in the directory (GET /directory/people)")
    return person


def reassign(
    ticket: TicketState, actor: Actor, now: datetime, to: Person, reason: str | None, config: Config
) -> Change:
    ensure_can_reassign(actor, ticket.scope)
    ensure_can_hand_over(actor, ticket.sensitive, to, ticket.department)
    transition(ticket.stage, "reassign")
    if ticket.owner == to.person_id:
        raise Invalid(f"{to.person_id} already owns {ticket.ticket_id}")
    fields: dict[str, Any] = dict(owner=to.person_id, department=to.department, updated_at=now)
    department = config.departments.get(to.department)
    if department is not None and department.partner and department.department_id not in ticket.shares:
        # Its topic hears of it from now on, with the rule's action filled for that department.
        rule = config.rules.get(ticket.trigger)
        action = ticket.action
        if rule is not None:
            allowed = privacy.action_facts(department.department_id, ticket.trigger)
            facts = {**ticket.facts, "building_id": ticket.scope.building_id, "grid_id": ticket.scope.grid_id,
                     "resident_id": ticket.scope.resident_id}  # fmt: skip
            action = fill(rule.action, facts, allowed) or None
        elif department.department_id in privacy.WITHHELD:
            action = None
        fields["shares"] = {**ticket.shares, department.department_id: action}
    return _change(
        ticket, fields, "reassign", actor.sub, now, TicketReassigned, note=reason, previous_owner=ticket.owner
    )


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
    sensitive: bool = False,
) -> Escalation | None:
    """The next escalation of a ticket, if it is due: one level up the supervisor chain and
    one step up in priority; the next check comes `repeat` later if nothing happens."""
    breach = overdue(stage, respond_by, resolve_by, now)
    if breach is None or level >= max_level:
        return None
    supervisor = config.supervisor_of(owner)
    current = config.people.get(owner) or Person(owner, owner, "unknown", "command")
    new_owner = supervisor or current
    if sensitive and new_owner.department in privacy.WITHHELD and new_owner.department != current.department:
        new_owner = config.default_owner("command")  # health data does not climb into property or police
    return Escalation(
        level=level + 1,
        owner=new_owner,
        previous_owner=owner,
        priority=raised(priority),
        breach=breach,
        next_check=now + repeat,
    )


def escalated(ticket: TicketState, escalation: Escalation, now: datetime) -> Change:
    """The ticket once `escalation` is claimed: its new owner, priority, level and next check."""
    owner = escalation.owner.person_id
    fields = dict(owner=owner, priority=escalation.priority, escalation_level=escalation.level,
                  next_check_at=escalation.next_check, updated_at=now)  # fmt: skip
    return _change(
        ticket, fields, "escalate", "escalation", now, TicketEscalated,
        note=f"missed {escalation.breach}_by; level {escalation.level} to {owner}",
        level=escalation.level, previous_owner=escalation.previous_owner, priority=escalation.priority,
    )  # fmt: skip
