"""The dispatch rules, with no fixtures: priority, SLA, matching, availability, surges, routing."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from common.errors import Forbidden, Invalid
from common.vocabulary import Role
from dispatch import domain, routing

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 local


# -- priority and due time -------------------------------------------------------------------


def test_priority_rises_with_category_and_tags():
    assert domain.priority_for("other", []) == "low"
    assert domain.priority_for("groceries", []) == "normal"
    assert domain.priority_for("groceries", ["elderly", "living_alone"]) == "high"
    assert domain.priority_for("medicine", ["chronic"]) == "urgent"  # refills of chronic patients come first
    assert domain.priority_for("medical_visit", ["pregnant"]) == "urgent"
    assert domain.priority_for("psychological", ["mental_health"]) == "urgent"
    assert domain.priority_for("tech_help", ["elderly"]) == "normal"


def test_unknown_category_says_which_are_known():
    with pytest.raises(Invalid, match="unknown category 'food'.*groceries"):
        domain.priority_for("food", [])


def test_due_by_follows_the_sla_table_or_a_later_wished_window():
    assert domain.due_by("urgent", NOW) == NOW + timedelta(hours=2)
    assert domain.due_by("normal", NOW) == NOW + timedelta(hours=24)
    later = domain.Window(NOW + timedelta(days=2), NOW + timedelta(days=2, hours=3))
    assert domain.due_by("urgent", NOW, later) == later.end
    soon = domain.Window(NOW, NOW + timedelta(hours=1))
    assert domain.due_by("normal", NOW, soon) == NOW + timedelta(hours=24)


def test_green_channel_raises_priority_one_step():
    assert domain.raise_priority("normal") == "high"
    assert domain.raise_priority("urgent") == "urgent"


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (NOW + timedelta(hours=2), NOW + timedelta(hours=1), "before it starts"),
        (NOW - timedelta(hours=3), NOW - timedelta(hours=1), "ended already"),
        (NOW + timedelta(days=20), NOW + timedelta(days=21), "days ahead"),
    ],
)
def test_bad_windows_are_refused(start, end, message):
    with pytest.raises(Invalid, match=message):
        domain.check_window(domain.Window(start, end), NOW)


def test_who_may_raise_for_whom():
    assert domain.source_for(domain.Actor("R1", Role.resident), "R1", "G1", "B1") == "resident"
    assert (
        domain.source_for(domain.Actor("L1", Role.building_lead, building_ids=("B1",)), "R1", "G1", "B1")
        == "building_lead"
    )
    with pytest.raises(Forbidden):
        domain.source_for(domain.Actor("R2", Role.resident), "R1", "G1", "B1")
    with pytest.raises(Forbidden):
        domain.source_for(domain.Actor("L1", Role.building_lead, building_ids=("B2",)), "R1", "G1", "B1")
    with pytest.raises(Forbidden):
        domain.source_for(domain.Actor("V1", Role.volunteer), "R1", "G1", "B1")


# -- availability and matching ---------------------------------------------------------------


def test_availability_windows_are_weekly_and_local():
    mornings = (domain.Availability(time(8), time(12), (1, 2, 3, 4, 5)),)
    assert domain.available_between(mornings, NOW, NOW + timedelta(hours=1), TZ)  # Monday 09:00
    evening = NOW + timedelta(hours=10)  # Monday 19:00
    assert not domain.available_between(mornings, evening, evening + timedelta(hours=1), TZ)
    saturday = NOW + timedelta(days=5)
    assert not domain.available_between(mornings, saturday, saturday + timedelta(hours=2), TZ)
    assert domain.available_between((), saturday, saturday + timedelta(hours=2), TZ)  # no windows: any time


def _candidate(vid, group="errands", lat=31.2304, lon=121.4737, load=0, capacity=5, skills=(), availability=()):
    return domain.Candidate(vid, group, tuple(skills), lat, lon, capacity, load, 0, tuple(availability))


def _need(category="groceries", lat=31.2304, lon=121.4737):
    return domain.Need(category, lat, lon, NOW, NOW + timedelta(hours=6))


def test_matching_goes_by_group_then_nearness():
    near = _candidate("near", lat=31.2305)
    far = _candidate("far", lat=31.2504)
    tech = _candidate("tech", group="tech")
    assert domain.match(_need(), [far, near, tech], TZ).volunteer_id == "near"
    assert domain.match(_need("tech_help"), [far, near, tech], TZ).volunteer_id == "tech"


def test_psychological_requests_never_go_to_errand_runners():
    errand = _candidate("errand", skills=("counselling", "hotline"))
    assert domain.match(_need("psychological"), [errand], TZ) is None
    hotline = _candidate("hotline", group="publicity", skills=("hotline",), lat=31.26)
    counsellor = _candidate("counsellor", group="counsellor", lat=31.25)
    assert domain.match(_need("psychological"), [errand, hotline], TZ).volunteer_id == "hotline"
    assert domain.match(_need("psychological"), [errand, hotline, counsellor], TZ).volunteer_id == "counsellor"


def test_load_spreads_work_and_capacity_is_a_hard_limit():
    busy = _candidate("busy", load=3)
    free = _candidate("free", lat=31.2340)  # ~400 m further
    assert domain.match(_need(), [busy, free], TZ).volunteer_id == "free"
    full = _candidate("full", load=5, capacity=5)
    assert domain.match(_need(), [full], TZ) is None


def test_nobody_gets_everything():
    """Ten requests at one door, three volunteers: each takes a share."""
    volunteers = {v: 0 for v in ("a", "b", "c")}
    positions = {"a": 31.2304, "b": 31.2310, "c": 31.2320}
    for _ in range(10):
        candidates = [_candidate(v, lat=positions[v], load=volunteers[v]) for v in volunteers]
        chosen = domain.match(_need(), candidates, TZ)
        volunteers[chosen.volunteer_id] += 1
    assert max(volunteers.values()) <= 4 and min(volunteers.values()) >= 3


def test_unavailable_or_excluded_volunteers_are_skipped():
    away = _candidate("away", availability=(domain.Availability(time(18), time(20)),))
    other = _candidate("other", lat=31.25)
    assert domain.match(_need(), [away, other], TZ).volunteer_id == "other"
    assert domain.match(_need(), [other], TZ, exclude=["other"]) is None


def test_fulfilment_only_by_the_assigned_volunteer():
    volunteer = domain.Actor("V1", Role.volunteer)
    domain.check_fulfilment("assigned", "V1", "V1", volunteer, 20)
    with pytest.raises(Forbidden, match="assigned to V1, not to V2"):
        domain.check_fulfilment("assigned", "V1", "V2", domain.Actor("V2", Role.volunteer), 20)
    with pytest.raises(Forbidden):
        domain.check_fulfilment("assigned", "V1", "V1", domain.Actor("V2", Role.volunteer), 20)
    with pytest.raises(Invalid, match="already fulfilled"):
        domain.check_fulfilment("fulfilled", "V1", "V1", volunteer, 20)
    with pytest.raises(Invalid, match="awaiting_stock"):
        domain.check_fulfilment("awaiting_stock", None, "V1", volunteer, 20)


def test_refills_are_raised_ahead_and_none_is_skipped():
    due = NOW + timedelta(days=2)
    assert domain.next_refills(due, 30, timedelta(days=2), NOW) == [due]
    assert domain.next_refills(due, 30, timedelta(days=1), NOW) == []
    # the service was down for 65 days: every missed refill is raised, none silently skipped
    assert len(domain.next_refills(NOW - timedelta(days=65), 30, timedelta(days=2), NOW)) == 3


# -- surge detection ---------------------------------------------------------------------------


def test_a_window_far_above_its_baseline_is_a_surge():
    test = domain.surge_test(12, [2, 3, 1, 2, 3, 2, 2, 1])
    assert test.surge and test.p_value < 1e-4


def test_normal_variation_is_not_a_surge():
    assert not domain.surge_test(4, [2, 3, 1, 2, 3, 2, 2, 1]).surge
    # the same count is a surge where the baseline is low, and not where it is high
    assert domain.surge_test(9, [1, 2, 1, 1, 2, 1]).surge
    assert not domain.surge_test(9, [8, 10, 7, 9, 11, 8]).surge


def test_tiny_counts_are_not_surges_even_from_zero():
    assert not domain.surge_test(2, [0, 0, 0, 0]).surge
    assert domain.surge_test(3, [0, 0, 0, 0, 0, 0, 0, 0]).surge


def test_windows_are_aligned_so_replicas_agree():
    length = timedelta(hours=6)
    at = datetime(2026, 11, 23, 7, 31, tzinfo=UTC)
    assert domain.window_floor(at, length) == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


# -- routing ------------------------------------------------------------------------------------


def _grid_stops(n: int) -> list[routing.Stop]:
    return [routing.Stop(f"s{i}", 31.2304 + 0.001 * (i % 7), 121.4737 + 0.0012 * (i // 7)) for i in range(n)]


def test_routes_start_and_end_at_the_depot_and_respect_capacity():
    stops = _grid_stops(20)
    problem = routing.Problem(
        (31.2304, 121.4737),
        stops,
        [routing.Vehicle("a", 8), routing.Vehicle("b", 8), routing.Vehicle("c", 8)],
        3 * 3600,
    )
    plan = routing.solve(problem, time_limit_s=1)
    served = [k for r in plan.routes for k in r.stops]
    assert sorted(served) == sorted(s.key for s in stops) and not plan.dropped
    assert all(len(r.stops) <= 8 for r in plan.routes)
    assert all(r.arrivals_s == sorted(r.arrivals_s) for r in plan.routes)
    assert plan.distance_m < routing.arrival_order(problem).distance_m


def test_time_windows_are_kept_and_impossible_stops_are_dropped():
    stops = [
        routing.Stop("late", 31.2404, 121.4737, earliest_s=3600, latest_s=4000),
        routing.Stop("early", 31.2310, 121.4737, latest_s=1200),
        routing.Stop("impossible", 31.5, 121.9, latest_s=60),  # 40 km away, due in a minute
    ]
    problem = routing.Problem((31.2304, 121.4737), stops, [routing.Vehicle("a", 5)], 3 * 3600)
    plan = routing.solve(problem, time_limit_s=1)
    assert plan.dropped == ["impossible"]
    route = plan.routes[0]
    assert route.stops == ["early", "late"]
    assert route.arrivals_s[0] <= 1200 and 3600 <= route.arrivals_s[1] <= 4000


def test_each_dropped_stop_gets_the_reason_it_could_not_be_served():
    depot = (31.2304, 121.4737)
    km = 1 / 111.2  # degrees of latitude per kilometre
    stops = [
        routing.Stop("too_late", depot[0] + 5 * km, depot[1], latest_s=600),  # 5 km: 21 min away, due in 10
        routing.Stop("out_of_reach", depot[0] + 30 * km, depot[1]),  # 2 h 5 min each way in a 3 h slot
        routing.Stop("north", depot[0] + 12 * km, depot[1]),  # either fits alone, not both in one run
        routing.Stop("south", depot[0] - 12 * km, depot[1]),
    ]
    problem = routing.Problem(depot, stops, [routing.Vehicle("a", 5)], 3 * 3600)
    plan = routing.solve(problem, time_limit_s=1)
    reasons = {u.key: u for u in routing.why_unplanned(problem, plan.dropped)}
    assert reasons["too_late"].reason == "too_late" and reasons["too_late"].available_s == 600
    assert reasons["out_of_reach"].reason == "out_of_reach"
    assert reasons["out_of_reach"].needed_s > reasons["out_of_reach"].available_s == 3 * 3600
    assert round(reasons["out_of_reach"].distance_m / 1000) == 30
    [left] = {"north", "south"} & set(reasons)
    assert reasons[left].reason == "no_room"

    full = routing.Problem(depot, _grid_stops(4), [routing.Vehicle("a", 3)], 3600)
    assert [u.reason for u in routing.why_unplanned(full, routing.solve(full, time_limit_s=1).dropped)] == ["capacity"]
    nobody = routing.Problem(depot, _grid_stops(2), [], 3600)
    assert {u.reason for u in routing.why_unplanned(nobody, routing.solve(nobody).dropped)} == {"no_volunteer"}


def test_nothing_to_plan_is_an_empty_plan():
    plan = routing.solve(routing.Problem((31.2, 121.4), [], [routing.Vehicle("a", 5)], 3600))
    assert plan.routes == [] and plan.dropped == []


def test_haversine_matrix_matches_the_scalar_formula():
    points = [(31.2304, 121.4737), (31.2404, 121.4837), (39.9042, 116.4074)]
    matrix = routing.haversine_matrix(points)
    assert matrix[0, 0] == 0 and matrix[0, 1] == matrix[1, 0]
    assert abs(matrix[0, 2] - domain.haversine_m(*points[0], *points[2])) <= 1
    assert 1_060_000 < matrix[0, 2] < 1_075_000  # Shanghai - Beijing


def test_residents_cancel_their_own_requests_dispatch_staff_anyone_s_and_done_is_done():
    domain.check_cancellation("pending", "R1", domain.Actor("R1", Role.resident))
    domain.check_cancellation("assigned", "R1", domain.Actor("D1", Role.dispatcher))
    with pytest.raises(Forbidden, match="their own"):
        domain.check_cancellation("pending", "R1", domain.Actor("R2", Role.resident))
    with pytest.raises(Forbidden, match="role 'volunteer' cannot cancel"):
        domain.check_cancellation("pending", "R1", domain.Actor("V1", Role.volunteer))
    with pytest.raises(Invalid, match="already fulfilled"):
        domain.check_cancellation("fulfilled", "R1", domain.Actor("C1", Role.command))
