"""The command center's rules, SLA, escalation, visibility and state machine: plain values, no fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from command import defaults, domain
from common.errors import Conflict, Forbidden, Invalid
from common.events.checkin import CheckInMissed, HealthAnomalyReported, SamplingLagging
from common.events.dispatch import DemandSurge
from common.events.partner import (
    HealthTicketShared,
    PoliceTicketShared,
    PropertyTicketShared,
)
from common.events.supplies import StockLow, StockOut

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 10:00 local
LOADED = defaults.load()
CONFIG = domain.Config(
    rules={r.trigger: r for r in LOADED.rules},
    sla=tuple(LOADED.sla),
    people={p.person_id: p for p in LOADED.people},
    departments={d.department_id: d for d in LOADED.departments},
)


def missed(days: int = 1, grid: str = "G1") -> CheckInMissed:
    return CheckInMissed(
        resident_id="R1", date=date(2026, 11, 21), consecutive_days=days, grid_id=grid, building_id="B01"
    )


def fever() -> HealthAnomalyReported:
    return HealthAnomalyReported(
        resident_id="R1", date=date(2026, 11, 21), temperature_c=38.4, symptoms=["cough"], grid_id="G1",
        building_id="B01", name="王芳", phone="13800000000", unit="1", room="301", lat=31.2, lon=121.4,
    )  # fmt: skip


# -- routing -------------------------------------------------------------------------------


def test_a_missed_checkin_goes_to_the_grids_worker_same_day():
    routing = domain.route(domain.report_from_event(missed()), CONFIG)
    assert (routing.kind, routing.department, routing.owner.person_id, routing.priority) == (
        "followup",
        "grid",
        "gw-G1",
        "normal",
    )
    assert routing.open_key == "followup:R1"
    due = domain.deadlines(CONFIG.sla_for(routing.kind, routing.priority), NOW, TZ)
    assert due.respond_by == NOW + timedelta(minutes=120)
    assert due.resolve_by.astimezone(TZ).date() == date(2026, 11, 21)  # due the same day
    assert due.resolve_by.astimezone(TZ).hour == 22  # 10:00 + 12 h, before midnight


def test_same_day_deadline_is_cut_at_midnight():
    late = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # 22:00 local
    due = domain.deadlines(CONFIG.sla_for("followup", "normal"), late, TZ)
    assert due.resolve_by.astimezone(TZ).strftime("%Y-%m-%d %H:%M") == "2026-11-21 23:59"


@given(st.lists(st.integers(min_value=0, max_value=3 * 24 * 3600 - 1), min_size=1, max_size=30))
def test_same_day_deadlines_follow_the_local_day_of_each_ticket(offsets):
    """Tickets opened one after another across local midnights (the end of each local day is
    remembered between calls): each is cut at 23:59:59 of its own local day."""
    sla = CONFIG.sla_for("followup", "normal")
    for offset in offsets:
        at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC) + timedelta(seconds=offset)
        local_day = at.astimezone(TZ).date()
        end_of_day = datetime.combine(local_day, datetime.max.time().replace(microsecond=0), tzinfo=TZ)
        due = domain.deadlines(sla, at, TZ)
        assert due.resolve_by == min(at + timedelta(minutes=sla.resolve_minutes), end_of_day)
        assert due.respond_by == min(at + timedelta(minutes=sla.respond_minutes), end_of_day)
        assert due.resolve_by.tzinfo == at.tzinfo


def test_two_consecutive_missed_days_raise_priority():
    assert domain.route(domain.report_from_event(missed(2)), CONFIG).priority == "high"
    assert domain.route(domain.report_from_event(missed(5)), CONFIG).priority == "high"


def test_a_grid_without_a_worker_falls_back_to_the_departments_owner():
    assert domain.route(domain.report_from_event(missed(grid="G99")), CONFIG).owner.person_id == "grid-lead"


def test_a_fever_is_urgent_for_health_respond_in_30_resolve_in_4_hours():
    routing = domain.route(domain.report_from_event(fever()), CONFIG)
    assert (routing.kind, routing.department, routing.priority, routing.owner.person_id) == (
        "fever",
        "health",
        "urgent",
        "health-duty",
    )
    due = domain.deadlines(CONFIG.sla_for("fever", "urgent"), NOW, TZ)
    assert (due.respond_by - NOW, due.resolve_by - NOW) == (timedelta(minutes=30), timedelta(hours=4))
    assert set(routing.shares) == {"health", "property"}


@pytest.mark.parametrize(
    ("event", "kind", "owner", "priority"),
    [
        (StockLow(item_id="I1", depot_id="D1", on_hand=3, threshold=10), "stock_shortage", "supplies-officer", "normal"),
        (StockOut(item_id="I1", depot_id="D1"), "stock_shortage", "supplies-officer", "high"),
        (SamplingLagging(round_id="N1", building_id="B07", completion_rate=0.5, grid_id="G2"), "sampling_lagging", "gw-G2", "normal"),
        (DemandSurge(category="medicine", count=60, baseline=10, window_start=NOW, window_end=NOW, suggested_action="Open a pharmacy run"),
         "demand_surge", "cmd-duty", "high"),
    ],
)  # fmt: skip
def test_other_events_route_to_their_owners(event, kind, owner, priority):
    routing = domain.route(domain.report_from_event(event), CONFIG)
    assert (routing.kind, routing.owner.person_id, routing.priority) == (kind, owner, priority)


def test_stock_low_then_out_is_one_problem():
    low = domain.route(domain.report_from_event(StockLow(item_id="I1", depot_id="D1", on_hand=3, threshold=10)), CONFIG)
    out = domain.route(domain.report_from_event(StockOut(item_id="I1", depot_id="D1")), CONFIG)
    assert low.open_key == out.open_key == "stock_shortage:I1:D1"


def test_demand_surge_carries_the_suggested_action():
    surge = DemandSurge(
        category="medicine",
        count=12,
        baseline=4,
        window_start=NOW,
        window_end=NOW,
        suggested_action="Open a pharmacy run",
    )
    assert domain.route(domain.report_from_event(surge), CONFIG).action == "Open a pharmacy run"


@pytest.mark.parametrize(
    ("template", "filled"),
    [
        (
            "Follow up {resident_id}: {days} day(s), {symptoms}; {none} {empty} {absent}",
            "Follow up R1: 2 day(s), cough, fever; ? none ?",
        ),
        ("{{literal}} braces and {resident_id}", "{literal} braces and R1"),
        ("no facts at all", "no facts at all"),
        ("{days:>999999999} days", "{days:>999999999} days"),  # a format spec is never run: shown as written
        ("{resident_id!r}", "{resident_id!r}"),
        ("{} or {0} or {resident_id.x}", "{} or {0} or {resident_id.x}"),  # not fact names: left as written
        ("broken {resident_id", "broken {resident_id"),
        ("", ""),
    ],
)
def test_titles_and_actions_fill_in_the_facts(template, filled):
    facts = {"resident_id": "R1", "days": 2, "symptoms": ["cough", "fever"], "none": None, "empty": []}
    assert domain.fill(template, facts) == filled


def test_an_unknown_or_disabled_trigger_is_not_routed():
    assert domain.route(domain.Report(trigger="event:CouponIssued", subject_id="x"), CONFIG) is None
    rules = dict(CONFIG.rules)
    rules["event:CheckInMissed"] = domain.Rule(**{**vars(rules["event:CheckInMissed"]), "enabled": False})
    disabled = domain.Config(rules=rules, sla=CONFIG.sla, people=CONFIG.people, departments=CONFIG.departments)
    assert domain.route(domain.report_from_event(missed()), disabled) is None


def test_a_hand_report_may_ask_for_more_priority_never_less():
    report = domain.Report(trigger="category:complaint", subject_id="s", description="noise", priority="low")
    assert domain.route(report, CONFIG).priority == "normal"
    assert (
        domain.route(domain.Report(trigger="category:complaint", subject_id="s", priority="urgent"), CONFIG).priority
        == "urgent"
    )


def test_sla_falls_back_from_kind_to_any():
    assert CONFIG.sla_for("complaint", "normal").respond_minutes == 240
    assert CONFIG.sla_for("complaint", "urgent").respond_minutes == 30


def test_priority_only_brings_deadlines_forward():
    current = domain.Deadlines(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    fresh = domain.Deadlines(NOW + timedelta(minutes=60), NOW + timedelta(minutes=30))
    assert domain.tighter(current, fresh) == domain.Deadlines(current.respond_by, fresh.resolve_by)


# -- configuration checks ------------------------------------------------------------------


def test_bad_rules_and_sla_are_refused_with_a_reason():
    rule = CONFIG.rules["event:CheckInMissed"]
    with pytest.raises(Invalid, match="unknown department 'nowhere'"):
        domain.check_rule(domain.Rule(**{**vars(rule), "department": "nowhere"}), CONFIG.departments)
    with pytest.raises(Invalid, match="owner_by"):
        domain.check_rule(domain.Rule(**{**vars(rule), "owner_by": "luck"}), CONFIG.departments)
    with pytest.raises(Invalid, match="trigger"):
        domain.check_rule(domain.Rule(**{**vars(rule), "trigger": "CheckInMissed"}), CONFIG.departments)
    with pytest.raises(Invalid, match="after resolve_minutes"):
        domain.check_sla(domain.Sla("fever", "urgent", 300, 60))


def test_a_supervisor_loop_is_refused():
    boss = domain.Person("a", "A", "x", "command", supervisor_id="b")
    people = {"a": boss, "b": domain.Person("b", "B", "x", "command", supervisor_id="a")}
    with pytest.raises(Invalid, match="loop"):
        domain.check_person(boss, people, ["command"])
    with pytest.raises(Invalid, match="unknown supervisor"):
        domain.check_person(domain.Person("c", "C", "x", "command", supervisor_id="zz"), people, ["command"])


# -- the state machine ------------------------------------------------------------------------


def test_the_happy_path_and_a_refused_transition_says_what_is_allowed():
    stage = domain.transition("discovered", "acknowledge")
    stage = domain.transition(stage, "resolve")
    assert domain.after_feedback(stage, 4) == "closed"
    assert domain.after_feedback("resolved", 2) == "reopened"
    with pytest.raises(Conflict) as refused:
        domain.transition("discovered", "resolve")
    assert "allowed: acknowledge, reassign" in refused.value.message
    with pytest.raises(Conflict, match="closed"):
        domain.transition("closed", "acknowledge")
    with pytest.raises(Invalid):
        domain.after_feedback("resolved", 6)


ACTIONS = st.sampled_from(["acknowledge", "resolve", "feedback", "reassign", "escalate", "update"])


@given(st.lists(st.tuples(ACTIONS, st.integers(1, 5)), max_size=40))
def test_state_machine_property(steps):
    """Whatever is attempted: the stage stays a known stage, a refused action changes
    nothing and names exactly the actions that would succeed, closed is final and only
    reached from resolved by satisfied feedback, and resolved only from responding."""
    stage = "discovered"
    for action, satisfaction in steps:
        before = stage
        try:
            stage = (
                domain.after_feedback(stage, satisfaction) if action == "feedback" else domain.transition(stage, action)
            )
        except Conflict as refused:
            would = []
            for candidate in domain.HTTP_ACTIONS:
                try:
                    domain.after_feedback(before, 3) if candidate == "feedback" else domain.transition(
                        before, candidate
                    )
                    would.append(candidate)
                except Conflict:
                    pass
            assert refused.details["allowed"] == would
            assert stage == before
            continue
        assert stage in domain.STAGES
        assert before != "closed"
        if stage == "closed":
            assert before == "resolved" and action == "feedback" and satisfaction >= 3
        if stage == "resolved" and before != "resolved":
            assert before == "responding" and action == "resolve"
        if action == "feedback":
            assert stage == ("closed" if satisfaction >= 3 else "reopened")


# -- escalation -----------------------------------------------------------------------------


def test_an_unacknowledged_ticket_escalates_to_the_supervisor_and_up():
    respond_by, resolve_by = NOW - timedelta(minutes=1), NOW + timedelta(hours=3)
    args = dict(stage="discovered", respond_by=respond_by, resolve_by=resolve_by, now=NOW, config=CONFIG,
                repeat=timedelta(minutes=60), max_level=3)  # fmt: skip
    first = domain.escalate(owner="gw-G1", priority="normal", level=0, **args)
    assert (first.level, first.owner.person_id, first.priority, first.breach) == (1, "grid-lead", "high", "respond")
    assert first.next_check == NOW + timedelta(minutes=60)
    second = domain.escalate(owner="grid-lead", priority="high", level=1, **args)
    assert (second.level, second.owner.person_id, second.priority) == (2, "cmd-lead", "urgent")
    top = domain.escalate(owner="cmd-lead", priority="urgent", level=2, **args)
    assert (top.level, top.owner.person_id, top.priority) == (3, "cmd-lead", "urgent")  # no one above: stays
    assert domain.escalate(owner="cmd-lead", priority="urgent", level=3, **args) is None  # at the cap


def test_nothing_escalates_before_its_deadline_or_after_resolution():
    args = dict(owner="gw-G1", priority="normal", level=0, config=CONFIG, repeat=timedelta(hours=1), max_level=3)
    assert (
        domain.escalate(stage="discovered", respond_by=NOW, resolve_by=NOW + timedelta(hours=1), now=NOW, **args)
        is None
    )
    assert (
        domain.escalate(
            stage="resolved", respond_by=NOW - timedelta(hours=5), resolve_by=NOW - timedelta(hours=1), now=NOW, **args
        )
        is None
    )
    late = domain.escalate(
        stage="responding", respond_by=NOW - timedelta(hours=5), resolve_by=NOW - timedelta(seconds=1), now=NOW, **args
    )
    assert late.breach == "resolve"


# -- partners and visibility --------------------------------------------------------------------


def _ticket(**extra):
    return {"ticket_id": "T-1", "kind": "fever", "stage": "discovered", "priority": "urgent", "respond_by": NOW,
            "resolve_by": NOW, "at": NOW, "resident_id": "R1", "building_id": "B01", "description": None,
            "trigger": "event:HealthAnomalyReported", "facts": fever().model_dump(mode="json"), **extra}  # fmt: skip


HEALTH_WORDS = ("temperature", "symptom", "phone", "name", "resident", "room", "unit")


def test_health_gets_what_it_needs_property_and_police_get_no_health_data():
    health = domain.partner_event("health", _ticket(), "Call the resident")
    assert isinstance(health, HealthTicketShared)
    assert (health.resident_id, health.room, health.phone, health.temperature_c, health.symptoms) == (
        "R1",
        "301",
        "13800000000",
        38.4,
        ["cough"],
    )
    for department, cls in (("property", PropertyTicketShared), ("police", PoliceTicketShared)):
        message = domain.partner_event(department, _ticket(), "Disinfect", f"ref-{department}")
        assert isinstance(message, cls) and message.ticket_id == f"ref-{department}"  # never the ticket's own id
        fields = message.model_dump(mode="json")
        assert fields["building_id"] == "B01"
        assert not [f for f in fields if any(w in f for w in HEALTH_WORDS)], fields
        assert "38.4" not in message.model_dump_json() and "13800000000" not in message.model_dump_json()
        assert "fever" not in message.model_dump_json()  # the kind itself would say "a fever case here"
    assert domain.partner_event("fire", _ticket(), None) is None
    public_order = domain.partner_event(
        "police", _ticket(kind="public_order", trigger="category:public_order", description="crowd at the gate",
                          facts={"category": "public_order"}), None, "ref-p")  # fmt: skip
    assert (public_order.kind, public_order.summary) == ("public_order", None)  # what was said stays with staff


def test_who_sees_what():
    scope = domain.TicketScope(
        owner="health-duty", department="health", grid_id="G1", building_id="B01", resident_id="R1"
    )
    see = lambda role, sub="x", **kw: domain.can_see(domain.Actor(sub, role, **kw), scope)
    assert see("command") and see("resident", "R1") and not see("resident", "R2")
    assert see("partner", department="health") and not see("partner", department="police")
    assert see("grid_worker", grid_ids=("G1",)) and not see("grid_worker", grid_ids=("G2",))
    assert not see("volunteer") and not see("supplies_officer")
    with pytest.raises(Forbidden):
        domain.ensure_can_work(domain.Actor("R1", "resident"), scope, "resolve")
    assert domain.ensure_can_give_feedback(domain.Actor("R1", "resident"), scope) == "resident"
    assert domain.ensure_can_give_feedback(domain.Actor("cmd-duty", "command"), scope) == "on_behalf"
    with pytest.raises(Forbidden):
        domain.ensure_can_give_feedback(domain.Actor("R2", "resident"), scope)


def test_where_a_ticket_may_be_handed_over():
    people = CONFIG.people
    staff, health = domain.Actor("cmd-duty", "command"), domain.Actor("h-1", "partner", department="health")
    domain.ensure_can_hand_over(staff, True, people["health-lead"])
    domain.ensure_can_hand_over(staff, True, people["cmd-lead"])  # the community's own departments may hold health data
    domain.ensure_can_hand_over(health, True, people["health-lead"])
    domain.ensure_can_hand_over(staff, False, people["police-duty"])
    domain.ensure_can_hand_over(staff, True, people["police-duty"], "police")  # within police: it is there already
    for to in ("police-duty", "property-duty"):
        with pytest.raises(Invalid, match="carries health data"):
            domain.ensure_can_hand_over(staff, True, people[to], "health")
    with pytest.raises(Forbidden, match="own department"):
        domain.ensure_can_hand_over(health, True, people["cmd-duty"])


def test_a_partner_outside_health_sees_a_health_ticket_without_health_data():
    ticket = {"ticket_id": "T-1", "kind": "fever", "title": "Fever 38.6 °C: R1", "action": "Disinfect B01", "building_id": "B01",
              "facts": {"temperature_c": 38.6}, "resident_id": "R1", "subject_id": "R1", "description": "cough", "owner": "police-duty",
              "shares": {"police": "Disinfect B01"}}  # fmt: skip
    police = domain.Actor("p-1", "partner", department="police")
    assert domain.withholds_health(police)
    assert not domain.withholds_health(domain.Actor("h-1", "partner", department="health"))
    assert not domain.withholds_health(domain.Actor("cmd-duty", "command"))
    shown = domain.view(police, ticket, True)
    assert (shown["kind"], shown["title"], shown["building_id"], shown["owner"]) == (
        "public_order",
        "public_order: Disinfect B01",
        "B01",
        "police-duty",
    )
    assert "38.6" not in str(shown) and "R1" not in str(shown) and "cough" not in str(shown)


def test_figures_helpers():
    assert domain.median_minutes([timedelta(minutes=10), timedelta(minutes=30), timedelta(minutes=20)]) == 20
    assert domain.median_minutes([]) is None
    assert domain.rate(1, 4) == 0.25 and domain.rate(0, 0) is None
    since, meeting = domain.meeting_window(date(2026, 11, 21), datetime.min.time().replace(hour=9), TZ)
    assert (meeting - since, meeting) == (timedelta(days=1), datetime(2026, 11, 21, 1, 0, tzinfo=UTC))
