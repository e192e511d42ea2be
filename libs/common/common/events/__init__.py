"""The event contract: one frozen class per event, for all five services (DESIGN.md §3.1).

Importing this package registers every event so consumers can look classes up by name.
"""

from common.events import checkin, command, dispatch, messaging, partner, supplies, timebank  # noqa: F401
from common.events.base import Event, all_events, event_class, parse_dataschema, register

__all__ = ["Event", "all_events", "event_class", "parse_dataschema", "register"]
