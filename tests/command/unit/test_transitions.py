"""What each transition changes, decided from a ticket's state: plain values, no fixtures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from command import defaults, domain
from common.errors import Conflict, Forbidden, Invalid, NotFound
from common.events.checkin import CheckInMissed
from common.events.command import (
    TicketAcknowledged,
    TicketClosed,
    TicketEscalated,
    TicketOpened,
    TicketReassigned,
    TicketReopened,
    TicketResolved,
)

TZ = ZoneInfo("Asia/Shanghai")
OPENED = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
NOW = OPENED + timedelta(minutes=30)
LOADED = defaults.load()
CONFIG = domain.Config(
    rules={r.trigger: r for r in LOADED.rules},
    sla=tuple(LOADED.sla),
    people={p.person_id: p for p in LOADED.people},
    departments={d.department_id: d for d in LOADED.departments},
)
WORKER = domain.Actor("gw-G1", "grid_worker", grid_ids=("G1",))
RESIDENT = domain.Actor("R1", "resident")
STAFF = domain.Actor("cmd-duty", "command")
SCOPE = domain.TicketScope(owner="gw-G1", department="grid", grid_id="G1", building_id="B01", resident_id="R1")
TICKET = domain.TicketState(
    ticket_id="T-1", stage="discovered", owner="gw-G1", department="grid", kind="followup", priority="normal",
    respond_by=OPENED + timedelta(hours=2), resolve_by=OPENED + timedelta(hours=12), scope=SCOPE,
)  # fmt: skip


def test_acknowledging_moves_to_responding_and_the_next_check_to_the_resolve_deadline():
    change = domain.acknowledge(TICKET, WORKER, NOW, "on my way")
    assert change.fields == {"stage": "responding", "acknowledged_at": NOW, "acknowledged_by": "gw-G1",
                             "next_check_at": TICKET.resolve_by, "updated_at": NOW}  # fmt: skip
    assert isinstance(change.event, TicketAcknowledged)
    assert (change.event.stage, change.event.owner, change.event.by, change.event.at) == (
        "responding",
        "gw-G1",
        "gw-G1",
        NOW,
    )
    assert change.log == domain.LogLine("acknowledge", "discovered", "responding", "gw-G1", NOW, "gw-G1", "on my way")
    assert change.counted_as == "acknowledge"


def test_only_those_who_may_work_a_ticket_acknowledge_it_and_only_when_the_stage_allows():
    with pytest.raises(Forbidden):
        domain.acknowledge(TICKET, RESIDENT, NOW)
    with pytest.raises(NotFound):  # a ticket one may not see answers as one that does not exist
        domain.acknowledge(TICKET, domain.Actor("gw-G2", "grid_worker", grid_ids=("G2",)), NOW)
    with pytest.raises(Conflict) as refused:
        domain.acknowledge(replace(TICKET, stage="responding"), WORKER, NOW)
    assert refused.value.details["allowed"] == ["resolve", "reassign"]


def test_resolving_needs_words_and_a_responding_ticket():
    with pytest.raises(Invalid):
        domain.resolve(replace(TICKET, stage="responding"), WORKER, NOW, "   ")
    with pytest.raises(Conflict):
        domain.resolve(TICKET, WORKER, NOW, "called")
    change = domain.resolve(replace(TICKET, stage="responding"), WORKER, NOW, " called them ")
    assert change.fields["stage"] == "resolved" and change.fields["resolution"] == "called them"
    assert change.fields["next_check_at"] is None
    assert isinstance(change.event, TicketResolved) and change.event.resolution is None  # what was done: history only


def test_good_feedback_closes_and_frees_the_problem_for_a_new_ticket():
    change = domain.feedback(replace(TICKET, stage="resolved"), RESIDENT, NOW, 4, "thanks", CONFIG, TZ)
    assert (
        change.fields["stage"] == "closed" and change.fields["open_key"] is None and change.fields["closed_at"] == NOW
    )
    assert isinstance(change.event, TicketClosed) and (change.event.satisfaction, change.event.comment) == (4, None)
    assert (change.log.action, change.log.note, change.log.satisfaction) == ("feedback", "thanks", 4)
    assert change.counted_as == "feedback_closed"


def test_bad_feedback_reopens_with_fresh_deadlines_from_the_first_level():
    escalated = replace(TICKET, stage="resolved", escalation_level=2, reopen_count=1)
    change = domain.feedback(escalated, STAFF, NOW, 2, None, CONFIG, TZ)
    due = domain.deadlines(CONFIG.sla_for("followup", "normal"), NOW, TZ)
    assert change.fields["stage"] == "reopened"
    assert (change.fields["respond_by"], change.fields["resolve_by"], change.fields["next_check_at"]) == (
        due.respond_by,
        due.resolve_by,
        due.respond_by,
    )
    assert (change.fields["reopen_count"], change.fields["escalation_level"], change.fields["acknowledged_at"]) == (
        2,
        0,
        None,
    )
    assert isinstance(change.event, TicketReopened) and change.event.reason == "satisfaction 2: not solved"
    assert change.log.note == "recorded on the resident's behalf:"  # staff record it for the resident
    assert change.counted_as == "feedback_reopened"


def test_feedback_comes_from_the_resident_or_on_their_behalf_and_only_when_resolved():
    with pytest.raises(Forbidden):
        domain.feedback(replace(TICKET, stage="resolved"), domain.Actor("R9", "resident"), NOW, 5, None, CONFIG, TZ)
    with pytest.raises(Conflict):
        domain.feedback(TICKET, RESIDENT, NOW, 5, None, CONFIG, TZ)
    with pytest.raises(Invalid):
        domain.feedback(replace(TICKET, stage="resolved"), RESIDENT, NOW, 6, None, CONFIG, TZ)


def test_an_event_on_a_resolved_ticket_reopens_it():
    change = domain.reopen(
        replace(TICKET, stage="resolved", priority="high"), "checkin", NOW, "event:CheckInMissed", "E-1", CONFIG, TZ
    )
    due = domain.deadlines(CONFIG.sla_for("followup", "high"), NOW, TZ)
    assert (change.fields["stage"], change.fields["respond_by"]) == ("reopened", due.respond_by)
    assert change.event.reason == "reported again after it was resolved"  # not which (maybe health) trigger
    assert (change.log.action, change.log.from_stage, change.log.event_id) == ("reopen", "resolved", "E-1")


def test_reassigning_moves_owner_and_department_and_tells_a_partner_from_then_on():
    health = CONFIG.default_owner("health")
    fever = replace(
        TICKET, kind="fever", action="visit", trigger="event:HealthAnomalyReported", facts={"temperature_c": 38.6}
    )
    change = domain.reassign(fever, STAFF, NOW, health, "a doctor should see", CONFIG)
    assert (change.fields["owner"], change.fields["department"]) == (health.person_id, "health")
    rule = CONFIG.rules["event:HealthAnomalyReported"]
    assert change.fields["shares"] == {"health": rule.action}  # the rule's action, filled for health
    assert isinstance(change.event, TicketReassigned) and change.event.previous_owner == "gw-G1"
    with pytest.raises(Invalid):
        domain.reassign(TICKET, STAFF, NOW, CONFIG.people["gw-G1"], None, CONFIG)  # already theirs
    with pytest.raises(Invalid):
        domain.reassign(fever, STAFF, NOW, CONFIG.default_owner("police"), None, CONFIG)  # health data stays away
    with pytest.raises(Invalid):
        domain.assignee(CONFIG, "nobody")


def test_an_escalation_of_a_sensitive_ticket_never_climbs_into_property_or_police():
    health_lead = replace(CONFIG.people["health-lead"], supervisor_id="police-duty")
    config = replace(CONFIG, people={**CONFIG.people, "health-lead": health_lead})
    late = NOW + timedelta(hours=3)
    args = dict(stage="discovered", owner="health-lead", priority="urgent", level=1, respond_by=TICKET.respond_by,
                resolve_by=TICKET.resolve_by, now=late, config=config, repeat=timedelta(hours=1), max_level=3)  # fmt: skip
    assert domain.escalate(**args).owner.person_id == "police-duty"  # no health data: the chain as written
    assert domain.escalate(**args, sensitive=True).owner.person_id == config.default_owner("command").person_id


def test_an_escalation_hands_the_ticket_up_with_its_priority_and_next_check():
    late = NOW + timedelta(hours=3)
    args = dict(stage="discovered", owner="gw-G1", priority="normal", level=0, respond_by=TICKET.respond_by,
                resolve_by=TICKET.resolve_by, now=late, config=CONFIG, repeat=timedelta(hours=1), max_level=3)  # fmt: skip
    escalation = domain.escalate(**args)
    change = domain.escalated(TICKET, escalation, late)
    assert change.fields == {"owner": "grid-lead", "priority": "high", "escalation_level": 1,
                             "next_check_at": late + timedelta(hours=1), "updated_at": late}  # fmt: skip
    assert isinstance(change.event, TicketEscalated) and (change.event.level, change.event.previous_owner) == (
        1,
        "gw-G1",
    )
    assert (change.log.by, change.log.note) == ("escalation", "missed respond_by; level 1 to grid-lead")


def test_a_new_ticket_is_discovered_owned_and_due_and_says_so():
    report = domain.report_from_event(
        CheckInMissed(resident_id="R1", date=date(2026, 11, 21), consecutive_days=2, grid_id="G1", building_id="B01")
    )
    routing = domain.route(report, CONFIG)
    due = domain.deadlines(CONFIG.sla_for(routing.kind, routing.priority), NOW, TZ)
    row, event = domain.opened("T-1", report, routing, due, NOW, "checkin", ["E-1"])
    assert (row["stage"], row["owner"], row["priority"], row["open_key"]) == (
        "discovered",
        "gw-G1",
        "high",
        "followup:R1",
    )
    assert (row["respond_by"], row["next_check_at"], row["reopen_count"], row["escalation_level"]) == (
        due.respond_by,
        due.respond_by,
        0,
        0,
    )
    assert (row["opened_by"], row["opened_owner"], row["source_event_ids"]) == ("checkin", "gw-G1", ["E-1"])
    assert "acknowledged_at" not in row  # what starts empty is left to the column's default
    assert isinstance(event, TicketOpened) and (event.ticket_id, event.owner, event.resolve_by) == (
        "T-1",
        "gw-G1",
        due.resolve_by,
    )
