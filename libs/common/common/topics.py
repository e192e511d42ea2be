"""The topic catalog: every topic FirstLine uses, with its partitions and retention.

Topics are created from here (`ensure_topics`), never by auto-creation, so that
partitions and retention are the same on a laptop, in CI and in production.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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

    @property
    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_days * DAY_MS), "cleanup.policy": "delete"}


CHECKIN_EVENTS = "checkin.events.v1"
SUPPLIES_EVENTS = "supplies.events.v1"
DISPATCH_EVENTS = "dispatch.events.v1"
TIMEBANK_EVENTS = "timebank.events.v1"
COMMAND_EVENTS = "command.events.v1"
MESSAGING_EVENTS = "messaging.events.v1"
PARTNER_HEALTH = "partner.health.v1"
PARTNER_POLICE = "partner.police.v1"
PARTNER_PROPERTY = "partner.property.v1"

SERVICES = ("checkin", "supplies", "dispatch", "timebank", "command", "messaging")


def dlq(service: str) -> str:
    """The dead-letter topic of a consuming service."""
    return f"{service}.dlq.v1"


def partner_topic(department: str) -> str:
    return f"partner.{department}.v1"


CATALOG: tuple[Topic, ...] = (
    Topic(CHECKIN_EVENTS, 6, 30, "Residents, daily check-ins, missed check-ins, health anomalies, sampling"),
    Topic(SUPPLIES_EVENTS, 6, 30, "Stock alarms, reservations, expiry, suggested transfers"),
    Topic(DISPATCH_EVENTS, 6, 30, "Service requests, assignments, delivery runs, demand surges"),
    Topic(TIMEBANK_EVENTS, 6, 30, "Hours credited and redeemed, coupons"),
    Topic(COMMAND_EVENTS, 6, 30, "Ticket lifecycle of the command center"),
    Topic(MESSAGING_EVENTS, 6, 30, "Replies of residents and staff to messages (feedback, acknowledgements, check-ins)"),
    Topic(PARTNER_HEALTH, 3, 14, "Tickets for the health department (卫健), minimised"),
    Topic(PARTNER_POLICE, 3, 14, "Public-order tickets for the police (公安), never health data"),
    Topic(PARTNER_PROPERTY, 3, 14, "Building actions for property management (物业), never health data"),
    *(Topic(dlq(s), 3, 30, f"Messages {s} could not apply, with the reason in headers") for s in SERVICES),
)


def by_name(name: str) -> Topic:
    for topic in CATALOG:
        if topic.name == name:
            return topic
    raise KeyError(name)


async def ensure_topics(bootstrap_servers: str, replication_factor: int = 1, **client_kwargs) -> list[str]:
    """Create every catalog topic that does not exist yet; return the names created. Idempotent."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_kwargs)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in CATALOG if t.name not in existing]
        if not missing:
            return []
        new = [NewTopic(t.name, t.partitions, replication_factor, topic_configs=t.config) for t in missing]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:  # another replica won the race: that is fine
            pass
        log.info("created topics %s", [t.name for t in missing])
        return [t.name for t in missing]
    finally:
        await admin.close()
