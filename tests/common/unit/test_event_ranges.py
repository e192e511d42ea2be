"""Event payloads carry plausible ranges: a consumer validating against the shared class
refuses (and dead-letters) what no real check-in, delivery or ledger could produce."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from common.events.checkin import CheckInSubmitted, HealthAnomalyReported
from common.events.dispatch import RequestFulfilled
from common.events.timebank import HoursCredited, HoursRedeemed

ANOMALY = dict(resident_id="R1", date=date(2026, 11, 21), grid_id="G1", building_id="B01")


@pytest.mark.parametrize("temperature", [1e308, float("inf"), float("nan"), -40.0, 33.9, 43.1])
def test_implausible_temperatures_are_refused(temperature):
    with pytest.raises(ValidationError):
        HealthAnomalyReported(**ANOMALY, temperature_c=temperature)
    with pytest.raises(ValidationError):
        CheckInSubmitted(resident_id="R1", date=date(2026, 11, 21), temperature_c=temperature, channel="self")


def test_plausible_values_pass():
    assert HealthAnomalyReported(**ANOMALY, temperature_c=39.1).temperature_c == 39.1
    assert RequestFulfilled(request_id="Q1", volunteer_id="V1", service_minutes=1440).service_minutes == 1440
    assert HoursCredited(member_id="M1", hours=8, reason="x").hours == 8


@pytest.mark.parametrize("minutes", [-1, 1441, 10**9])
def test_service_minutes_are_bounded(minutes):
    with pytest.raises(ValidationError):
        RequestFulfilled(request_id="Q1", volunteer_id="V1", service_minutes=minutes)


@pytest.mark.parametrize("hours", [0, -1, 1e308, float("inf")])
def test_hours_are_bounded(hours):
    with pytest.raises(ValidationError):
        HoursCredited(member_id="M1", hours=hours, reason="x")
    with pytest.raises(ValidationError):
        HoursRedeemed(member_id="M1", hours=hours, reason="x")
