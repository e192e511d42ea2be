"""Retention: how long each kind of record is kept, and what a service's retention job
reports. Each service's job deletes or anonymises its own records older than its settings
(`<SERVICE>_RETENTION_*_DAYS`, docs/privacy.md); this module holds what they share: the
figures (counts per kind of record, logged and in `firstline_retention_records_total`,
never a person) and which outbox rows carry health data.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

# Events whose payload carries health data (temperatures, symptoms, health tags, free-text
# needs): their sent outbox rows are deleted after `outbox_health_retention_hours`, sooner
# than the others (`outbox_retention_hours`).
HEALTH_EVENT_TYPES = frozenset(
    {
        "CheckInSubmitted",
        "CheckInMissed",  # health tags
        "HealthAnomalyReported",
        "ResidentRegistered",  # health tags, name and phone
        "CheckInReceived",
        "RequestRaised",  # a medicine request's details
        "HealthTicketShared",
        "TicketOpened",
        "TicketUpdated",
    }
)

_counters: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def _counter(registry: CollectorRegistry) -> Counter:
    counter = _counters.get(registry)
    if counter is None:
        counter = _counters[registry] = Counter(
            "firstline_retention_records_total",
            "Records a retention job or an erasure deleted or anonymised, by kind of record",
            ["service", "record", "how"],
            registry=registry,
        )
    return counter


def cutoff(now: datetime, days: float) -> datetime | None:
    """The instant before which records of a kind kept `days` days are due; None: kept for ever (0)."""
    return now - timedelta(days=days) if days > 0 else None


def report(
    registry: CollectorRegistry, service: str, why: str, deleted: Mapping[str, int], anonymised: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """Count and log what a retention job or an erasure removed (figures only); returns them."""
    counter = _counter(registry)
    for how, figures in (("deleted", deleted), ("anonymised", anonymised)):
        for record, count in figures.items():
            if count:
                counter.labels(service, record, how).inc(count)
    done = {
        "deleted": {k: v for k, v in deleted.items() if v},
        "anonymised": {k: v for k, v in anonymised.items() if v},
    }
    if done["deleted"] or done["anonymised"]:
        log.info("%s %s: deleted %s, anonymised %s", service, why, done["deleted"], done["anonymised"])
    return done
