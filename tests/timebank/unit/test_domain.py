"""The time bank's rules, with no fixtures."""

from __future__ import annotations

from datetime import date

import pytest

from common.errors import Conflict, Forbidden, Invalid
from common.vocabulary import Role
from timebank import domain

RULES = {"request_fulfilled": 5, "publicity": 3, "other": 0}


@pytest.mark.parametrize(
    ("minutes", "rounding", "hours"),
    [
        (50, "nearest", 0.75),
        (52, "nearest", 0.75),
        (53, "nearest", 1.0),  # 52.5 is the half step: rounds up
        (50, "up", 1.0),
        (50, "down", 0.75),
        (7, "nearest", 0.0),
        (8, "nearest", 0.25),
        (0, "up", 0.0),
        (600, "nearest", 8.0),  # capped at max_hours
    ],
)
def test_service_minutes_become_hours_by_the_configured_rule(minutes, rounding, hours):
    units = domain.credit_units(minutes, step_minutes=15, rounding=rounding, max_hours=8)
    assert domain.from_units(units, "hours") == hours


def test_a_ten_minute_step_rounds_hours_to_the_hundredth():
    assert domain.credit_units(10, step_minutes=10, rounding="nearest", max_hours=8) == 17  # 0.17 h


def test_negative_minutes_are_refused():
    with pytest.raises(Invalid, match="negative"):
        domain.credit_units(-5, step_minutes=15, rounding="up", max_hours=8)


@pytest.mark.parametrize(
    ("amount", "message"),
    [(-1, "positive"), (0, "positive"), (0.005, "multiple of 0.01"), ("x", "number"), (float("inf"), "finite")],
)
def test_amounts_must_be_positive_and_not_finer_than_a_unit(amount, message):
    with pytest.raises(Invalid, match=message):
        domain.to_units(amount, "hours")


def test_amounts_convert_exactly():
    assert domain.to_units(0.1, "hours") == 10
    assert domain.to_units(2.35, "hours") == 235
    assert domain.to_units(7, "points") == 7
    with pytest.raises(Invalid):
        domain.to_units(1.5, "points")


def test_points_are_a_base_per_activity_plus_points_per_hour():
    assert domain.points_for("request_fulfilled", 75, per_hour=10, per_activity=RULES) == 5 + 8
    assert domain.points_for("other", 0, per_hour=10, per_activity=RULES) == 0
    with pytest.raises(Invalid, match="unknown activity"):
        domain.points_for("juggling", 100, per_hour=10, per_activity=RULES)


def test_a_transfer_has_legs_that_sum_to_zero():
    transfer = domain.move(domain.EARN, "hours", "hours:pool", "hours:member:V1", 150)
    assert sum(leg.amount for leg in transfer.legs) == 0
    assert transfer.amount == 150
    with pytest.raises(ValueError, match="sum to zero"):
        domain.Transfer(domain.EARN, "hours", (domain.Leg("hours:pool", -1), domain.Leg("hours:member:V1", 2)))
    with pytest.raises(ValueError, match="hours account"):
        domain.Transfer(domain.EARN, "hours", (domain.Leg("hours:pool", -1), domain.Leg("points:member:V1", 1)))
    with pytest.raises(Invalid):
        domain.move(domain.REDEEM, "hours", "hours:member:V1", "hours:pool", 0)


def test_members_cannot_go_below_their_overdraft_but_the_pool_issues_freely():
    member = domain.account_spec("hours:member:V1", member_overdraft=50)
    domain.check_funds(member, 100, -150)  # down to -0.5 h: allowed by the overdraft
    with pytest.raises(Conflict, match="not enough to spend 1.51 hours"):
        domain.check_funds(member, 100, -151)
    no_overdraft = domain.account_spec("points:member:V1", member_overdraft=50)
    assert no_overdraft.overdraft == 0  # points never go below zero
    domain.check_funds(domain.account_spec("hours:pool"), -(10**9), -(10**6))
    assert domain.account_spec("hours:merchant:M1").owner_id == "M1"
    with pytest.raises(Invalid):
        domain.account_spec("gold:pool")


def test_hours_are_spent_on_oneself_or_linked_family_only():
    assert domain.beneficiary("V1", None, []) == "V1"
    assert domain.beneficiary("V1", "V1", []) == "V1"
    assert domain.beneficiary("V1", "MUM", ["MUM"]) == "MUM"
    with pytest.raises(Forbidden, match="family"):
        domain.beneficiary("V1", "NEIGHBOUR", ["MUM"])


def test_who_may_act():
    domain.ensure_self_or_staff(domain.Actor("V1", Role.volunteer), "V1", "spend")
    domain.ensure_self_or_staff(domain.Actor("S", Role.command), "V1", "spend")
    with pytest.raises(Forbidden):
        domain.ensure_self_or_staff(domain.Actor("V2", Role.volunteer), "V1", "spend")
    domain.ensure_merchant_or_staff(domain.Actor("M1", Role.merchant), "M1", "redeem")
    with pytest.raises(Forbidden):
        domain.ensure_merchant_or_staff(domain.Actor("M1", Role.resident), "M1", "redeem")


def test_relations_have_inverses():
    assert domain.check_relation("V1", "MUM", "parent") == "child"
    with pytest.raises(Invalid):
        domain.check_relation("V1", "V1", "parent")
    with pytest.raises(Invalid, match="unknown relation"):
        domain.check_relation("V1", "X", "friend")


def test_months():
    assert domain.month_bounds(None, date(2026, 11, 21)) == (date(2026, 11, 1), date(2026, 12, 1))
    assert domain.month_bounds("2026-12", date(2026, 11, 21)) == (date(2026, 12, 1), date(2027, 1, 1))
    for bad in ("2026-13", "Nov", "2026-1"):
        with pytest.raises(Invalid):
            domain.month_bounds(bad, date(2026, 11, 21))


def test_the_leaderboard_ranks_hours_then_points_and_ties_share_a_rank():
    standings = [
        domain.Standing("A", "A", 300, 40),
        domain.Standing("B", "B", 500, 10),
        domain.Standing("C", "C", 300, 40),
        domain.Standing("D", "D", 300, 30),
        domain.Standing("E", "E", 0, 0),
    ]
    ranked = domain.leaderboard(standings, size=10)
    assert [(rank, s.member_id) for rank, s in ranked] == [(1, "B"), (2, "A"), (2, "C"), (4, "D")]
    assert len(domain.leaderboard(standings, size=2)) == 2
