"""Envelopes the outbox stages are serialised once: the same bytes `encode(wrap(...))` gives."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from common import envelope as ce
from common.events.checkin import CheckInMissed
from common.events.command import TicketOpened

AT = datetime(2026, 11, 21, 2, 0, 0, 123456, tzinfo=UTC)
OPENED = TicketOpened(
    ticket_id="T-1", kind="followup", priority="normal", owner="gw-G1", department="grid", respond_by=AT,
    resolve_by=AT + timedelta(hours=8), source_event_ids=["e0"], category=None, title="断档 R1",
)  # fmt: skip
MISSED = CheckInMissed(resident_id="R1", date=date(2026, 11, 21), consecutive_days=2, grid_id="G1", building_id="B1")


@pytest.mark.parametrize("event", [OPENED, MISSED])
@pytest.mark.parametrize("at", [AT, AT.astimezone(timezone(timedelta(hours=8)))])
@pytest.mark.parametrize("chain", [{}, {"causation_id": "c1"}, {"correlation_id": "k1", "causation_id": "c1"}])
def test_encode_event_gives_the_bytes_encode_of_wrap_gives(event, at, chain):
    envelope = ce.wrap(event, at=at, event_id="e1", **chain)
    event_id, value = ce.encode_event(event, at=at, event_id="e1", **chain)
    assert (event_id, value) == ("e1", ce.encode(envelope))
    assert ce.parse(value) == envelope and ce.decode(envelope) == event


def test_an_envelope_needs_an_aware_time():
    with pytest.raises(ValueError):
        ce.encode_event(MISSED, at=AT.replace(tzinfo=None))


def test_new_ids_are_random_version_4_uuids_in_canonical_form():
    ids = [ce.new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:1000]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
    assert uuid.UUID(ce.wrap(MISSED, at=AT).id).version == 4
