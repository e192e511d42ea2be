"""The published contract: every event's JSON Schema is committed in docs/schemas/, and a
schema may only change compatibly (new optional fields) without a new version."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from common import schemas
from common.events import all_events
from common.events.base import Event

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "schemas"
DESIGN_FIELDS = {  # DESIGN.md §3.1: the payload fields that must be present
    "ResidentRegistered": {"resident_id", "community_id", "grid_id", "building_id", "tags"},
    "CheckInSubmitted": {"resident_id", "date", "temperature_c", "symptoms", "channel"},
    "CheckInMissed": {"resident_id", "date", "consecutive_days", "grid_id", "building_id"},
    "HealthAnomalyReported": {"resident_id", "date", "temperature_c", "symptoms", "grid_id", "building_id"},
    "SamplingLagging": {"round_id", "building_id", "completion_rate"},
    "StockLow": {"item_id", "depot_id", "on_hand", "threshold", "days_of_cover"},
    "StockOut": {"item_id", "depot_id"},
    "StockReserved": {"request_id", "lines"},
    "ReservationRejected": {"request_id", "shortages"},
    "RequestRaised": {"request_id", "resident_id", "category", "priority", "due_by"},
    "RequestAssigned": {"request_id", "volunteer_id"},
    "DeliveryPlanned": {"run_id", "volunteer_id", "stops", "distance_m"},
    "RequestFulfilled": {"request_id", "volunteer_id", "service_minutes"},
    "RequestOverdue": {"request_id", "due_by"},
    "DemandSurge": {"category", "count", "baseline", "window_start", "window_end"},
    "HoursCredited": {"member_id", "hours", "reason", "request_id"},
    "HoursRedeemed": {"member_id", "hours", "reason", "request_id"},
    "CouponIssued": {"coupon_id", "member_id", "merchant_id"},
    "CouponRedeemed": {"coupon_id", "member_id", "merchant_id"},
    "TicketOpened": {
        "ticket_id",
        "kind",
        "priority",
        "owner",
        "department",
        "respond_by",
        "resolve_by",
        "source_event_ids",
    },
    "TicketAcknowledged": {"ticket_id", "stage", "owner", "at"},
    "TicketResolved": {"ticket_id", "stage", "owner", "at"},
    "TicketClosed": {"ticket_id", "stage", "owner", "at", "satisfaction"},
    "TicketReopened": {"ticket_id", "stage", "owner", "at"},
    "TicketEscalated": {"ticket_id", "stage", "owner", "at"},
}


@pytest.mark.parametrize("cls", all_events(), ids=lambda c: f"{c.event_type()}.v{c.version}")
def test_committed_schema_is_current_and_changes_only_compatibly(cls: type[Event]):
    path = schemas.schema_path(DOCS, cls)
    assert path.exists(), f"{path} missing: run `make schemas` and commit it"
    committed = json.loads(path.read_text())
    current = schemas.schema_of(cls)
    problems = schemas.breaking_changes(committed, current)
    assert not problems, f"{cls.event_type()} v{cls.version} changed incompatibly: {problems}; make a new version"
    assert committed == current, f"{path} is out of date (compatible change): run `make schemas` and commit it"


@pytest.mark.parametrize("name", sorted(DESIGN_FIELDS))
def test_every_design_event_has_its_fields(name):
    [cls] = [c for c in all_events() if c.event_type() == name and c.version == 1]
    assert DESIGN_FIELDS[name] <= set(cls.model_fields), DESIGN_FIELDS[name] - set(cls.model_fields)


def test_events_are_frozen():
    for cls in all_events():
        assert cls.model_config.get("frozen"), cls


def _sample() -> dict:
    from common.events.checkin import CheckInMissed

    return schemas.schema_of(CheckInMissed)


def test_the_compatibility_check_can_fail():
    old = _sample()
    added_optional = copy.deepcopy(old)
    added_optional["properties"]["note"] = {"type": "string"}
    assert schemas.breaking_changes(old, added_optional) == []

    removed = copy.deepcopy(old)
    del removed["properties"]["grid_id"]
    assert schemas.breaking_changes(old, removed) == ["field 'grid_id' removed or renamed"]

    retyped = copy.deepcopy(old)
    retyped["properties"]["consecutive_days"] = {"type": "string"}
    assert schemas.breaking_changes(old, retyped) == ["field 'consecutive_days' changed type"]

    required = copy.deepcopy(old)
    required["properties"]["note"] = {"type": "string"}
    required["required"] = [*old["required"], "note"]
    assert schemas.breaking_changes(old, required) == ["field 'note' is newly required"]
