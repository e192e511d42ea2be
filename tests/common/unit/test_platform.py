"""libs/common without I/O: envelope, auth, settings, clock."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from common import envelope as ce
from common.auth import InvalidToken, Keyring, Principal, Role, Verifier, issue_token
from common.clock import ManualClock, day_bounds, local_date, local_instant
from common.events.checkin import CheckInMissed
from common.events.supplies import StockLow
from common.settings import ServiceSettings

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


def test_tokens_round_trip_and_expire(tmp_path):
    key = Keyring.ensure(tmp_path / "keys").current()
    verifier = Verifier("checkin", jwks_url="")
    verifier.use_jwks(Keyring(tmp_path / "keys").jwks())
    token = issue_token(
        key, sub="gw-1", role=Role.grid_worker, audience="checkin", now=datetime.now(UTC), grid_ids=["G1"]
    )
    principal = verifier.verify(token)
    assert principal == Principal(sub="gw-1", role=Role.grid_worker, grid_ids=["G1"])
    assert principal.can_see_grid("G1") and not principal.can_see_grid("G2")
    stranger = Keyring.ensure(tmp_path / "other").current()
    with pytest.raises(InvalidToken, match="invalid"):
        verifier.verify(issue_token(stranger, sub="x", role="admin", audience="checkin", now=datetime.now(UTC)))
    old = issue_token(
        key,
        sub="x",
        role="admin",
        audience="checkin",
        now=datetime.now(UTC) - timedelta(days=2),
        ttl=timedelta(minutes=10),
    )
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(old)


def test_production_refuses_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("FIRSTLINE_ENV", "production")
    # Kafka credentials given, so that only the database is at fault here.
    monkeypatch.setenv("KAFKA_CREDENTIALS_DIR", str(tmp_path))
    monkeypatch.setenv("KAFKA_USERNAME", "x")
    monkeypatch.setenv("KAFKA_PASSWORD", "y" * 40)
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "")
    with pytest.raises(ValidationError, match="PostgreSQL"):
        ServiceSettings(service="x", _env_file=None)
    assert (
        ServiceSettings(service="x", database_url="postgresql+asyncpg://u:p@h/db", _env_file=None).environment
        == "production"
    )


def test_development_defaults(monkeypatch):
    for name in ("FIRSTLINE_JWKS_URL", "FIRSTLINE_REVOCATIONS_URL", "FIRSTLINE_PORTAL_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIRSTLINE_ENV_FILE", "/nonexistent")
    settings = ServiceSettings(service="x", _env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///var/x.db"
    assert settings.jwks_url == "http://127.0.0.1:8000/.well-known/jwks.json" and settings.tz == SHANGHAI
    assert settings.revocations_url == "http://127.0.0.1:8000/.well-known/revoked-sessions"


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
