"""The shape every FirstLine event shares, and the registry that finds a class by name.

An event class is the contract for one event name and version: its fields are the
payload (`data` of the CloudEvent), its class variables say where it travels.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """A fact that happened in one service's domain. Frozen: facts do not change.

    Payloads ignore fields they do not know, so a producer may add an optional field
    without breaking consumers that have not been updated yet.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Set on each concrete event class.
    service: ClassVar[str]
    topic: ClassVar[str]
    version: ClassVar[int] = 1
    key_field: ClassVar[str]

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__

    @classmethod
    @functools.cache  # by class: every envelope names it
    def dataschema(cls) -> str:
        return f"urn:firstline:{cls.service}:{cls.event_type()}:{cls.version}"

    def subject(self) -> str:
        """The aggregate id: the CloudEvent subject and the Kafka key."""
        return str(getattr(self, self.key_field))


_REGISTRY: dict[tuple[str, int], type[Event]] = {}


def register(cls: type[Event]) -> type[Event]:
    """Class decorator: make an event findable by (type, version) for consumers."""
    key = (cls.event_type(), cls.version)
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise ValueError(f"event {key} is defined twice")
    _REGISTRY[key] = cls
    return cls


def event_class(event_type: str, version: int = 1) -> type[Event] | None:
    return _REGISTRY.get((event_type, version))


def all_events() -> list[type[Event]]:
    return sorted(_REGISTRY.values(), key=lambda c: (c.service, c.event_type(), c.version))


@functools.lru_cache(maxsize=1024)  # a few schemas, named by every message
def parse_dataschema(dataschema: str | None) -> tuple[str | None, int]:
    """`urn:firstline:checkin:CheckInMissed:1` -> ("CheckInMissed", 1); version 1 when absent."""
    if not dataschema:
        return None, 1
    parts = dataschema.split(":")
    if len(parts) == 5 and parts[0] == "urn" and parts[1] == "firstline" and parts[4].isdigit():
        return parts[3], int(parts[4])
    return None, 1


def payload(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json")
