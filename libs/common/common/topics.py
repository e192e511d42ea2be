"""The topic catalog: every topic FirstLine uses, with its partitions and retention.

Topics are created from here (`ensure_topics`), never by auto-creation, so that
partitions and retention are the same on a laptop, in CI and in production.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_days: int
    description: str
    producer: str  # the one service whose principal may write it, and the events' source
    # A topic whose latest message per key is the state (a partner's ticket) is compacted,
    # and still deleted after its retention.
    compacted: bool = False

    def config(self, replication_factor: int = 1) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_days * DAY_MS),
            "cleanup.policy": "compact,delete" if self.compacted else "delete",
            # acks=all then means every replica but one: a write survives one broker's loss.
            "min.insync.replicas": str(max(1, replication_factor - 1)),
        }


CHECKIN_EVENTS = "checkin.events.v1"
CHECKIN_RESIDENTS = "checkin.residents.v1"  # the registry alone: its readers get no check-in health data
SUPPLIES_EVENTS = "supplies.events.v1"
DISPATCH_EVENTS = "dispatch.events.v1"
TIMEBANK_EVENTS = "timebank.events.v1"
COMMAND_EVENTS = "command.events.v1"
MESSAGING_EVENTS = "messaging.events.v1"
PARTNER_HEALTH = "partner.health.v1"
PARTNER_POLICE = "partner.police.v1"
PARTNER_PROPERTY = "partner.property.v1"

SERVICES = ("checkin", "supplies", "dispatch", "timebank", "command", "messaging")
PARTNERS = ("health", "police", "property")


def dlq(service: str) -> str:
    """The dead-letter topic of a consuming service."""
    return f"{service}.dlq.v1"


def partner_topic(department: str) -> str:
    return f"partner.{department}.v1"


CATALOG: tuple[Topic, ...] = (
    Topic(CHECKIN_EVENTS, 6, 30, "Daily check-ins, missed check-ins, health anomalies, sampling", "checkin"),
    Topic(
        CHECKIN_RESIDENTS,
        6,
        30,
        "The resident registry: who lives where, and how to reach them",
        "checkin",
        compacted=True,
    ),
    Topic(SUPPLIES_EVENTS, 6, 30, "Stock alarms, reservations, expiry, suggested transfers", "supplies"),
    Topic(DISPATCH_EVENTS, 6, 30, "Service requests, assignments, delivery runs, demand surges", "dispatch"),
    Topic(TIMEBANK_EVENTS, 6, 30, "Hours credited and redeemed, coupons", "timebank"),
    Topic(COMMAND_EVENTS, 6, 30, "Ticket lifecycle of the command center", "command"),
    Topic(
        MESSAGING_EVENTS,
        6,
        30,
        "Replies of residents and staff to messages (feedback, acknowledgements, check-ins)",
        "messaging",
    ),
    Topic(PARTNER_HEALTH, 3, 14, "Tickets for the health department (卫健), minimised", "command", compacted=True),
    Topic(
        PARTNER_POLICE,
        3,
        14,
        "Public-order tickets for the police (公安), never health data",
        "command",
        compacted=True,
    ),
    Topic(
        PARTNER_PROPERTY,
        3,
        14,
        "Building actions for property management (物业), never health data",
        "command",
        compacted=True,
    ),
    *(Topic(dlq(s), 3, 30, f"Messages {s} could not apply, with the reason in headers", s) for s in SERVICES),
)

# What each service consumes: its principal is granted Read on these topics and nothing
# else (a service that consumes nothing still writes its own topic). A new service adds
# itself to SERVICES, its topic to CATALOG and a line here.
# Check-in reads the topics of the services that confirm an erasure it asked for
# (`ResidentErasedBy<Service>`); the time bank reads the registry for `ResidentErased`.
CONSUMES: dict[str, tuple[str, ...]] = {
    "checkin": (MESSAGING_EVENTS, DISPATCH_EVENTS, COMMAND_EVENTS, TIMEBANK_EVENTS),
    "supplies": (DISPATCH_EVENTS,),
    "dispatch": (CHECKIN_RESIDENTS, SUPPLIES_EVENTS, TIMEBANK_EVENTS),
    "timebank": (DISPATCH_EVENTS, CHECKIN_RESIDENTS),
    "command": (CHECKIN_EVENTS, CHECKIN_RESIDENTS, SUPPLIES_EVENTS, DISPATCH_EVENTS, MESSAGING_EVENTS),
    "messaging": (CHECKIN_EVENTS, CHECKIN_RESIDENTS, DISPATCH_EVENTS, TIMEBANK_EVENTS, COMMAND_EVENTS),
}

# Principals that only follow topics, from their end and without a consumer group: the
# portal pushes a household's check-ins, and the command center's ticket changes, to its
# open pages as they happen.
FOLLOWS: dict[str, tuple[str, ...]] = {"portal": (CHECKIN_EVENTS, COMMAND_EVENTS)}

# Event types that moved to another topic: still trusted where their producer wrote them
# before (only it may write there), so a replay of the old history still applies.
FORMER_TOPICS: dict[str, tuple[str, ...]] = {"ResidentRegistered": (CHECKIN_EVENTS,)}


def by_name(name: str) -> Topic:
    for topic in CATALOG:
        if topic.name == name:
            return topic
    raise KeyError(name)


def produced_by(service: str) -> list[Topic]:
    return [t for t in CATALOG if t.producer == service]


async def ensure_topics(
    client: dict[str, Any], replication_factor: int = 1, names: Collection[str] | None = None
) -> list[str]:
    """Create the catalog topics (all, or those named) that do not exist yet; return the
    names created. Idempotent. `client` holds the admin client's keyword arguments
    (`common.kafka.client_kwargs`); a principal sees, and may create, only its own topics."""
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in CATALOG if names is None or t.name in names]
        missing = [t for t in wanted if t.name not in existing]
        await _report_drift(admin, [t for t in wanted if t.name in existing])
        if not missing:
            return []
        new = [
            NewTopic(t.name, t.partitions, replication_factor, topic_configs=t.config(replication_factor))
            for t in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race: that is fine
            await admin.create_topics(new)
        log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _report_drift(admin: AIOKafkaAdminClient, present: list[Topic]) -> None:
    """Partitions unlike the catalog's are reported, not changed here: deploy/kafka/kafka.sh
    (the operator's provisioning) grows them and sets the catalog's configs."""
    if not present:
        return
    by_name = {t.name: t for t in present}
    for described in await admin.describe_topics(list(by_name)):
        topic = by_name.get(described["topic"])
        if topic and not described.get("error_code") and len(described["partitions"]) != topic.partitions:
            log.warning("topic %s has %d partitions, the catalog says %d (run deploy/kafka/kafka.sh provision)",
                        topic.name, len(described["partitions"]), topic.partitions)  # fmt: skip
