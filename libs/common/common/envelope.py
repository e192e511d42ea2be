"""The CloudEvents 1.0 envelope (structured JSON mode) around every FirstLine event.

Services never build envelopes by hand: `wrap` turns an event into an envelope and
`to_message` into the Kafka key, value and headers; `parse` does the reverse and says
exactly what is wrong when a message is not a valid FirstLine event.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

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


def wrap(
    event: Event,
    *,
    at: datetime,
    event_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> CloudEvent:
    event_id = event_id or str(uuid.uuid4())
    return CloudEvent(
        id=event_id,
        source=f"/firstline/{event.service}",
        type=event.event_type(),
        subject=event.subject(),
        time=at,
        dataschema=event.dataschema(),
        # A chain of events keeps the id of the first as its correlation id.
        correlationid=correlation_id or event_id,
        causationid=causation_id,
        data=event.model_dump(mode="json"),
    )


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
