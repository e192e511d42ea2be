"""The CloudEvents 1.0 envelope (structured JSON mode) around every FirstLine event.

Services never build envelopes by hand: `wrap` turns an event into an envelope and
`to_message` into the Kafka key, value and headers; `parse` does the reverse and says
exactly what is wrong when a message is not a valid FirstLine event.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import pydantic_core
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from common.events.base import Event, event_class, parse_dataschema

CONTENT_TYPE = "application/cloudevents+json"


class CloudEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: str = "1.0"
    id: str
    source: str
    type: str
    subject: str
    time: AwareDatetime
    datacontenttype: str = "application/json"
    dataschema: str
    correlationid: str | None = None
    causationid: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def version(self) -> int:
        return parse_dataschema(self.dataschema)[1]


def new_id() -> str:
    """A random (version 4) UUID as text, as `str(uuid.uuid4())` gives it, at a fraction of
    its cost (UUID's constructor and formatting were ~6 µs of every event emitted)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def wrap(
    event: Event,
    *,
    at: datetime,
    event_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> CloudEvent:
    return CloudEvent(**_fields(event, at, event_id, correlation_id, causation_id))


def encode_event(
    event: Event,
    *,
    at: datetime,
    event_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> tuple[str, bytes]:
    """The event id and the bytes `encode(wrap(...))` gives, without the envelope object: for
    the outbox, which stages a consumer batch's events by the thousand. The event was
    validated by its own class; the envelope's fields are ours (its time must be aware,
    as the envelope's field would insist)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("an envelope's time must be timezone-aware")
    fields = _fields(event, at, event_id, correlation_id, causation_id, with_data=False)
    head = pydantic_core.to_json(fields)
    return fields["id"], b"".join((head[:-1], b',"data":', pydantic_core.to_json(event), b"}"))


def _fields(
    event: Event,
    at: datetime,
    event_id: str | None,
    correlation_id: str | None,
    causation_id: str | None,
    *,
    with_data: bool = True,
) -> dict[str, Any]:
    event_id = event_id or new_id()
    # In the order of CloudEvent's fields, so the bytes are those `encode` gives.
    fields = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"/firstline/{event.service}",
        "type": event.event_type(),
        "subject": event.subject(),
        "time": at,
        "datacontenttype": "application/json",
        "dataschema": event.dataschema(),
        # A chain of events keeps the id of the first as its correlation id.
        "correlationid": correlation_id or event_id,
    }
    if causation_id is not None:  # left out when absent, as encode's exclude_none leaves it out
        fields["causationid"] = causation_id
    if with_data:
        fields["data"] = event.model_dump(mode="json")
    return fields


def encode(envelope: CloudEvent) -> bytes:
    return envelope.model_dump_json(exclude_none=True).encode()


def headers() -> dict[str, str]:
    return {"content-type": CONTENT_TYPE}


class InvalidMessage(Exception):
    """A message that is not a FirstLine event we can apply; `reason` says why."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # unparsable | invalid-envelope | unknown-type | invalid-payload


class UnknownEventType(InvalidMessage):
    pass


def parse(value: bytes | None) -> CloudEvent:
    """Bytes -> envelope, or InvalidMessage saying what is wrong."""
    if not value:
        raise InvalidMessage("empty message", "unparsable")
    try:  # the common case in one step; what fails is parsed again below to say exactly why
        return CloudEvent.model_validate_json(value)
    except ValidationError:
        pass
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"not JSON: {exc}", "unparsable") from exc
    if not isinstance(raw, dict):
        raise InvalidMessage("not a JSON object", "invalid-envelope")
    try:
        return CloudEvent.model_validate(raw)
    except ValidationError as exc:
        raise InvalidMessage(f"not a CloudEvent: {_errors(exc)}", "invalid-envelope") from exc


def decode(envelope: CloudEvent) -> Event:
    """Envelope -> the typed event of the contract, validated."""
    name, version = parse_dataschema(envelope.dataschema)
    cls = event_class(envelope.type, version)
    if cls is None or (name is not None and name != envelope.type):
        raise UnknownEventType(f"unknown event type {envelope.type!r} version {version}", "unknown-type")
    try:
        return cls.model_validate(envelope.data)
    except ValidationError as exc:
        raise InvalidMessage(f"{envelope.type} payload invalid: {_errors(exc)}", "invalid-payload") from exc


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])
