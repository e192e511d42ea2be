"""Dispatch's events as the time bank receives them: enveloped, as Kafka records."""

from __future__ import annotations

from datetime import datetime

from aiokafka import ConsumerRecord

from common import envelope as ce
from common.events.base import Event
from common.topics import DISPATCH_EVENTS

_offset = iter(range(10**9))


def record(event: Event, at: datetime, *, event_id: str | None = None) -> tuple[ConsumerRecord, str]:
    """A record as the consumer would read it from dispatch.events.v1, and its event id."""
    envelope = ce.wrap(event, at=at, event_id=event_id)
    value = ce.encode(envelope)
    return (
        ConsumerRecord(
            topic=DISPATCH_EVENTS,
            partition=0,
            offset=next(_offset),
            timestamp=int(at.timestamp() * 1000),
            timestamp_type=0,
            key=event.subject().encode(),
            value=value,
            checksum=None,
            serialized_key_size=-1,
            serialized_value_size=len(value),
            headers=[],
        ),
        envelope.id,
    )
