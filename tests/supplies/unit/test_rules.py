"""The stock rules, with no database, no broker and no clock."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import Conflict, Invalid
from supplies import domain
from supplies.domain import BatchStock, DepotCover, Level

TODAY = date(2026, 11, 21)


def level(available=50.0, reserved=0.0, minimum=None, daily=0.0, lead=3.0, on_hand=None) -> Level:
    usable = available + reserved
    return Level(on_hand if on_hand is not None else usable, usable, reserved, minimum, daily, lead)


# -- quantities ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, -0.5, float("nan"), float("inf"), 2e9])
def test_quantities_must_be_positive_finite_and_plausible(bad):
    with pytest.raises(Invalid):
        domain.check_quantity(bad)


def test_adjustments_are_signed_but_never_zero():
    assert domain.check_delta(-3) == -3
    assert domain.check_delta(2.5) == 2.5
    with pytest.raises(Invalid, match="non-zero"):
        domain.check_delta(0)


def test_expired_or_undated_batches_of_tracked_items_are_refused_at_receipt():
    with pytest.raises(Invalid, match="expires_on"):
        domain.check_receipt(None, True, TODAY, "KIT")
    with pytest.raises(Invalid, match="expired"):
        domain.check_receipt(date(2026, 11, 20), True, TODAY, "KIT")
    domain.check_receipt(TODAY, True, TODAY, "KIT")  # usable through its expiry date
    domain.check_receipt(None, False, TODAY, "RICE")


# -- batches --------------------------------------------------------------------------------


def test_issues_take_the_batch_that_expires_first_and_never_expired_stock():
    batches = [
        BatchStock(1, "late", date(2027, 6, 1), 10),
        BatchStock(2, "undated", None, 10),
        BatchStock(3, "soon", date(2026, 12, 1), 4),
        BatchStock(4, "gone", date(2026, 11, 1), 100),
    ]
    picks = domain.pick_batches(batches, 12, TODAY)
    assert [(b.batch, q) for b, q in picks] == [("soon", 4), ("late", 8)]
    assert domain.usable(batches, TODAY) == 24
    with pytest.raises(Conflict, match="only 24"):
        domain.pick_batches(batches, 25, TODAY)
    written_off = domain.pick_batches(batches, 100, TODAY, include_expired=True)
    assert [(b.batch, q) for b, q in written_off] == [("gone", 100)]


def test_expiring_batches_are_those_within_the_warning_window():
    batches = [
        BatchStock(1, "in-7", date(2026, 11, 28), 5),
        BatchStock(2, "in-8", date(2026, 11, 29), 5),
        BatchStock(3, "today", TODAY, 5),
        BatchStock(4, "past", date(2026, 11, 20), 5),
        BatchStock(5, "empty", date(2026, 11, 22), 0),
    ]
    assert [b.batch for b in domain.expiring(batches, TODAY, 7)] == ["in-7", "today"]


# -- thresholds and days of cover ---------------------------------------------------------------


def test_states_out_low_by_minimum_low_by_days_of_cover_and_ok():
    assert domain.assess(level(available=0, reserved=5)).state == "out"
    low = domain.assess(level(available=9, minimum=10))
    assert (low.state, low.reason, low.threshold) == ("low", "threshold", 10)
    # 20 units at 10 a day cover 2 days, under a 3-day lead time
    cover = domain.assess(level(available=20, daily=10, lead=3))
    assert (cover.state, cover.reason, cover.level.days_of_cover, cover.threshold) == (
        "low",
        "days_of_cover",
        2.0,
        30.0,
    )
    assert domain.assess(level(available=40, daily=10, lead=3, minimum=10)).state == "ok"
    assert domain.assess(level(available=40, daily=0, minimum=10)).level.days_of_cover is None


def test_an_alert_once_per_crossing_and_a_clearing_event_on_restoring():
    low = domain.assess(level(available=5, minimum=10))
    out = domain.assess(level(available=0, minimum=10))
    ok = domain.assess(level(available=50, minimum=10))
    assert domain.alert_for("ok", low) == "low"
    assert domain.alert_for("low", low) is None  # a later issue while still low: quiet
    assert domain.alert_for("low", out) == "out"
    assert domain.alert_for("out", out) is None
    assert domain.alert_for("out", ok) == "restored"
    assert domain.alert_for("ok", ok) is None


def test_most_urgent_first():
    statuses = {
        "low-by-minimum": domain.assess(level(available=9, minimum=10)),
        "out": domain.assess(level(available=0)),
        "one-day-left": domain.assess(level(available=10, daily=10)),
        "two-days-left": domain.assess(level(available=20, daily=10)),
    }
    ranked = sorted(statuses, key=lambda k: domain.urgency(statuses[k]))
    assert ranked == ["out", "one-day-left", "two-days-left", "low-by-minimum"]


# -- reservations --------------------------------------------------------------------------------


def test_a_reservation_takes_every_line_or_none():
    available = {"mask": {"A": 10, "B": 4}, "rice": {"A": 2}}
    plan = domain.plan_reservation([("mask", 12), ("rice", 3)], available)
    assert not plan.accepted and plan.allocations == []
    assert plan.shortages == [domain.ShortageLine("rice", 3, 2)]
    plan = domain.plan_reservation([("mask", 6), ("mask", 6), ("rice", 2)], available)
    assert plan.accepted
    assert plan.allocations == [
        domain.Allocation("mask", "A", 10),
        domain.Allocation("mask", "B", 2),
        domain.Allocation("rice", "A", 2),
    ]


def test_a_reservation_pinned_to_a_depot_takes_only_from_it():
    plan = domain.plan_reservation([("mask", 5)], {"mask": {"A": 10, "B": 4}}, depot_id="B")
    assert plan.shortages == [domain.ShortageLine("mask", 5, 4)]


@given(
    available=st.dictionaries(
        st.sampled_from(["i1", "i2", "i3"]),
        st.dictionaries(st.sampled_from(["A", "B", "C"]), st.integers(0, 50).map(float), max_size=3),
        max_size=3,
    ),
    lines=st.lists(
        st.tuples(st.sampled_from(["i1", "i2", "i3", "i4"]), st.integers(1, 60).map(float)), min_size=1, max_size=5
    ),
)
@settings(max_examples=200, deadline=None)
def test_reservation_plans_never_promise_what_is_not_there(available, lines):
    plan = domain.plan_reservation(lines, available)
    wanted = domain.merge_lines(lines)
    if plan.accepted:
        for item_id, quantity in wanted.items():
            assert sum(a.quantity for a in plan.allocations if a.item_id == item_id) == pytest.approx(quantity)
        for a in plan.allocations:
            assert 0 < a.quantity <= available[a.item_id][a.depot_id] + 1e-9
    else:
        assert plan.allocations == []
        for s in plan.shortages:
            assert s.available < s.requested
            assert s.available == pytest.approx(sum(available.get(s.item_id, {}).values()))


# -- redistribution --------------------------------------------------------------------------------


def test_one_transfer_from_the_smallest_donor_that_can_fill_the_need():
    depots = [
        DepotCover("station", 500, 10, None, 3),  # keeps 60: 440 to spare
        DepotCover("b1", 100, 10, None, 3),  # keeps 60: 40 to spare
        DepotCover("b2", 5, 10, None, 3),  # under 30: needs 45 - 5 = 40
    ]
    assert domain.suggest_transfers(depots) == [domain.Move("b1", "b2", 40)]


def test_no_transfer_when_nobody_is_short_or_nobody_can_spare():
    assert domain.suggest_transfers([DepotCover("a", 100, 10, None, 3), DepotCover("b", 40, 10, None, 3)]) == []
    assert domain.suggest_transfers([DepotCover("a", 50, 10, None, 3), DepotCover("b", 5, 10, None, 3)]) == []


@given(
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 30), st.one_of(st.none(), st.integers(0, 50)), st.integers(1, 5)),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=200, deadline=None)
def test_suggestions_fill_needs_from_surplus_only_and_stay_few(rows):
    depots = [DepotCover(f"d{i}", a, d, m, lt) for i, (a, d, m, lt) in enumerate(rows)]
    moves = domain.suggest_transfers(depots, surplus_factor=2.0, target_factor=1.5)
    by_id = {d.depot_id: d for d in depots}
    givers = {m.from_depot_id for m in moves}
    takers = {m.to_depot_id for m in moves}
    assert not givers & takers
    for depot_id in givers:
        d = by_id[depot_id]
        given_away = sum(m.quantity for m in moves if m.from_depot_id == depot_id)
        assert d.available - given_away >= d.line(2.0) - 1e-6  # a donor keeps its own cover
    for depot_id in takers:
        d = by_id[depot_id]
        assert d.available < d.line(1.0)
        assert sum(m.quantity for m in moves if m.to_depot_id == depot_id) <= d.line(1.5) - d.available + 1e-6
    assert all(m.quantity >= 1 for m in moves)
    if moves:  # never more trips than donors and receivers joined by a spanning tree
        assert len(moves) <= len(givers) + len(takers) - 1
