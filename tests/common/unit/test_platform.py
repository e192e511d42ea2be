"""libs/common without I/O: envelope, auth, settings, clock."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from common import envelope as ce
from common.auth import InvalidToken, Principal, Role, issue_token, read_token
from common.clock import ManualClock, day_bounds, local_date, local_instant
from common.events.checkin import CheckInMissed
from common.events.supplies import StockLow
from common.settings import DEV_JWT_SECRET, ServiceSettings

NOW = datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def missed() -> CheckInMissed:
    return CheckInMissed(resident_id="R-1", date=date(2026, 11, 21), consecutive_days=2, grid_id="G1", building_id="B1")


def test_envelope_round_trip():
    wrapped = ce.wrap(missed(), at=NOW)
    raw = json.loads(ce.encode(wrapped))
    assert raw["specversion"] == "1.0" and raw["datacontenttype"] == "application/json"
    assert raw["subject"] == "R-1" and raw["source"] == "/firstline/checkin"
    assert raw["correlationid"] == raw["id"] and "causationid" not in raw
    assert ce.decode(ce.parse(ce.encode(wrapped))) == missed()


def test_caused_events_carry_correlation_and_causation():
    first = ce.wrap(missed(), at=NOW)
    second = ce.wrap(missed(), at=NOW, correlation_id=first.correlationid, causation_id=first.id)
    assert second.correlationid == first.id and second.causationid == first.id


def test_stock_events_are_keyed_by_item_and_depot():
    low = StockLow(item_id="I1", depot_id="D1", on_hand=3, threshold=10, days_of_cover=1.5)
    assert ce.wrap(low, at=NOW).subject == "I1:D1"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"", "unparsable"),
        (b"\xff\xfe", "unparsable"),
        (b"[1, 2]", "invalid-envelope"),
        (b'{"id": "x"}', "invalid-envelope"),
    ],
)
def test_parse_says_what_is_wrong(value, kind):
    with pytest.raises(ce.InvalidMessage) as info:
        ce.parse(value)
    assert info.value.kind == kind and info.value.reason


def test_decode_rejects_unknown_types_and_invalid_payloads():
    wrapped = json.loads(ce.encode(ce.wrap(missed(), at=NOW)))
    unknown = ce.parse(json.dumps({**wrapped, "type": "Nope", "dataschema": "urn:firstline:x:Nope:1"}).encode())
    with pytest.raises(ce.UnknownEventType):
        ce.decode(unknown)
    bad = ce.parse(json.dumps({**wrapped, "data": {**wrapped["data"], "consecutive_days": 0}}).encode())
    with pytest.raises(ce.InvalidMessage, match="consecutive_days"):
        ce.decode(bad)


def test_events_are_frozen_facts():
    event = missed()
    with pytest.raises(ValidationError):
        event.grid_id = "G2"


def test_tokens_round_trip_and_expire():
    token = issue_token("s" * 40, sub="gw-1", role=Role.grid_worker, now=datetime.now(UTC), grid_ids=["G1"])
    principal = read_token("s" * 40, token)
    assert principal == Principal(sub="gw-1", role=Role.grid_worker, grid_ids=["G1"])
    assert principal.can_see_grid("G1") and not principal.can_see_grid("G2")
    with pytest.raises(InvalidToken, match="invalid"):
        read_token("t" * 40, token)
    old = issue_token("s" * 40, sub="x", role="admin", now=datetime.now(UTC) - timedelta(days=2), ttl=timedelta(hours=1))
    with pytest.raises(InvalidToken, match="expired"):
        read_token("s" * 40, old)


def test_production_refuses_default_secret_and_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("FIRSTLINE_ENV", "production")
    # Kafka credentials given, so that only the secret and the database are at fault here.
    monkeypatch.setenv("KAFKA_CREDENTIALS_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_USERNAME", "x")
    monkeypatch.setenv("KAFKA_PASSWORD", "y" * 40)
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "")
    monkeypatch.delenv("FIRSTLINE_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="FIRSTLINE_JWT_SECRET"):  # no env file: a stack's secret must not leak in
        ServiceSettings(service="x", database_url="postgresql+asyncpg://u:p@h/db", _env_file=None)
    monkeypatch.setenv("FIRSTLINE_JWT_SECRET", "x" * 40)
    with pytest.raises(ValidationError, match="PostgreSQL"):
        ServiceSettings(service="x", _env_file=None)
    assert ServiceSettings(service="x", database_url="postgresql+asyncpg://u:p@h/db", _env_file=None).jwt_secret == "x" * 40


def test_development_defaults(monkeypatch):
    monkeypatch.delenv("FIRSTLINE_JWT_SECRET", raising=False)
    monkeypatch.setenv("FIRSTLINE_ENV_FILE", "/nonexistent")
    settings = ServiceSettings(service="x", _env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///var/x.db"
    assert settings.jwt_secret == DEV_JWT_SECRET and settings.tz == SHANGHAI


def test_local_dates_and_cutoffs():
    late_evening_utc = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)  # 01:00 on the 22nd in Shanghai
    assert local_date(late_evening_utc, SHANGHAI) == date(2026, 11, 22)
    assert local_instant(date(2026, 11, 21), time(10), SHANGHAI) == datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    start, end = day_bounds(date(2026, 11, 21), SHANGHAI)
    assert end - start == timedelta(days=1) and start.hour == 16


def test_manual_clock():
    clock = ManualClock(NOW)
    clock.advance(hours=1)
    assert clock.now() == NOW + timedelta(hours=1)
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))
