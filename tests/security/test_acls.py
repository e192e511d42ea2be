"""The broker is locked: who may read, write and administer what (real broker, real ACLs)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import OffsetAndMetadata

from common import topics
from common.envelope import encode, wrap
from common.events.dispatch import RequestFulfilled
from common.principals import partner_principal
from support import kafka_client

OTHER_TOPICS = [t.name for t in topics.CATALOG]


async def end_offsets(kafka: str, topic: str) -> dict[TopicPartition, int]:
    reader = AIOKafkaConsumer(**kafka_client(bootstrap_servers=kafka), enable_auto_commit=False)
    await reader.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        if not tps:
            await reader._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        return await reader.end_offsets(tps)
    finally:
        await reader.stop()


async def committed(kafka: str, group: str, topic: str) -> dict:
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=kafka))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    finally:
        await admin.close()


async def test_a_client_without_credentials_reads_nothing(kafka):
    plaintext = AIOKafkaConsumer(topics.PARTNER_HEALTH, bootstrap_servers=kafka, group_id=None,
                                 auto_offset_reset="earliest", request_timeout_ms=5000)  # fmt: skip
    with pytest.raises(KafkaConnectionError):
        await plaintext.start()
    await plaintext.stop()

    settings = kafka_client("partner-health", bootstrap_servers=kafka)
    wrong = AIOKafkaConsumer(topics.PARTNER_HEALTH, **(settings | {"sasl_plain_password": "not-the-password"}),
                             group_id=None, auto_offset_reset="earliest")  # fmt: skip
    with pytest.raises(KafkaError):
        await wrong.start()
    await wrong.stop()

    # TLS without SASL is not a way in either.
    tls_only = AIOKafkaConsumer(topics.PARTNER_HEALTH, bootstrap_servers=kafka, security_protocol="SSL",
                                ssl_context=settings["ssl_context"], group_id=None, request_timeout_ms=5000)  # fmt: skip
    with pytest.raises(KafkaError):
        await tls_only.start()
    await tls_only.stop()


@pytest.mark.parametrize("department", topics.PARTNERS)
async def test_a_partner_reads_its_own_topic_in_its_own_groups_and_nothing_else(kafka, department):
    principal = partner_principal(department)
    own = topics.partner_topic(department)
    marker = f"probe-{uuid.uuid4().hex[:8]}".encode()
    operator = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
    await operator.start()
    try:
        await operator.send_and_wait(own, b"{}", key=marker)
    finally:
        await operator.stop()

    group = f"{principal}-desk-{uuid.uuid4().hex[:6]}"
    reader = AIOKafkaConsumer(own, **kafka_client(principal, bootstrap_servers=kafka), group_id=group,
                              auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await reader.start()
    try:
        seen: list[bytes] = []
        async with asyncio.timeout(30):
            while marker not in seen:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    seen += [r.key for r in batch]
        await reader.commit()
    finally:
        await reader.stop()

    # Every other topic is invisible to it (TOPIC_AUTHORIZATION_FAILED), so nothing can be fetched.
    admin = AIOKafkaAdminClient(**kafka_client(principal, bootstrap_servers=kafka))
    await admin.start()
    try:
        codes = {d["topic"]: d["error_code"] for d in await admin.describe_topics(OTHER_TOPICS)}
        assert sorted(await admin.list_topics()) == [own]
    finally:
        await admin.close()
    assert codes[own] == 0
    assert {t: c for t, c in codes.items() if t != own} == {t: 29 for t in OTHER_TOPICS if t != own}

    # A service's consumer group: refused, and its committed offsets do not move.
    for service, consumed in topics.CONSUMES.items():
        if not consumed:
            continue
        before = await committed(kafka, service, consumed[0])
        thief = AIOKafkaConsumer(**kafka_client(principal, bootstrap_servers=kafka), group_id=service,
                                 enable_auto_commit=False)  # fmt: skip
        await thief.start()
        try:
            thief.assign([TopicPartition(consumed[0], 0)])
            with pytest.raises((GroupAuthorizationFailedError, TopicAuthorizationFailedError)):
                await thief.commit({TopicPartition(consumed[0], 0): OffsetAndMetadata(0, "")})
        finally:
            await thief.stop()
        assert await committed(kafka, service, consumed[0]) == before


async def test_a_service_cannot_write_another_services_topic(kafka):
    forged = encode(wrap(RequestFulfilled(request_id="RQ-forged", volunteer_id="V-stranger", service_minutes=600),
                         at=datetime.now(UTC)))  # fmt: skip
    before = await end_offsets(kafka, topics.DISPATCH_EVENTS)
    producer = AIOKafkaProducer(**kafka_client("timebank", bootstrap_servers=kafka), request_timeout_ms=10000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topics.DISPATCH_EVENTS, forged, key=b"RQ-forged")
        # Its own topic is writable: the refusal above is the ACL, not a broken connection.
        await producer.send_and_wait(topics.dlq("timebank"), b"probe", key=b"probe")
    finally:
        await producer.stop()
    assert await end_offsets(kafka, topics.DISPATCH_EVENTS) == before  # nothing reached timebank's input


@pytest.mark.parametrize("service", topics.SERVICES)
async def test_a_service_cannot_delete_or_reconfigure_topics_or_create_unknown_ones(kafka, service):
    admin = AIOKafkaAdminClient(**kafka_client(service, bootstrap_servers=kafka))
    await admin.start()
    own = topics.produced_by(service)[0].name
    try:
        for topic in (own, topics.PARTNER_HEALTH):
            response = await admin.delete_topics([topic])
            assert all(code != 0 for _, code in response.topic_error_codes), f"{service} deleted {topic}"
            answers = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "1"})]
            )
            codes = [resource[0] for answer in answers for resource in answer.resources]
            assert codes and all(code != 0 for code in codes), f"{service} reconfigured {topic}"
        unknown = f"unknown.{uuid.uuid4().hex[:8]}"
        response = await admin.create_topics([NewTopic(unknown, 1, 1)])
        assert all(code != 0 for _, code, *_ in response.topic_errors)
    finally:
        await admin.close()

    producer = AIOKafkaProducer(**kafka_client(service, bootstrap_servers=kafka), request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(unknown, b"x")
    finally:
        await producer.stop()
    operator = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=kafka))
    await operator.start()
    try:
        names = await operator.list_topics()
    finally:
        await operator.close()
    assert unknown not in names and own in names and topics.PARTNER_HEALTH in names


def test_kafka_credentials_prints_what_a_partner_connects_with(kafka):
    out = subprocess.run([sys.executable, "-m", "common.cli", "kafka-credentials", "partner-police"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    creds = json.loads(out)
    assert set(creds) == {"bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_plain_username",
                          "sasl_plain_password", "ssl_cafile"}  # fmt: skip
    assert creds["sasl_plain_username"] == "partner-police" and creds["security_protocol"] == "SASL_SSL"

    async def read_own_topic() -> None:
        kwargs = dict(creds)
        ssl_context = create_ssl_context(cafile=kwargs.pop("ssl_cafile"))
        consumer = AIOKafkaConsumer(topics.PARTNER_POLICE, **kwargs, ssl_context=ssl_context,
                                    group_id=f"partner-police-{uuid.uuid4().hex[:6]}")  # fmt: skip
        await consumer.start()
        try:
            assert consumer.partitions_for_topic(topics.PARTNER_POLICE) or await consumer.topics()
        finally:
            await consumer.stop()

    asyncio.run(read_own_topic())
    refused = subprocess.run([sys.executable, "-m", "common.cli", "kafka-credentials", "stranger"],
                             capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2 and "unknown principal" in refused.stderr


async def test_a_reader_of_the_registry_is_not_granted_check_in_health_data(kafka):
    admin = AIOKafkaAdminClient(**kafka_client("dispatch", bootstrap_servers=kafka))
    await admin.start()
    try:
        codes = {
            d["topic"]: d["error_code"]
            for d in await admin.describe_topics([topics.CHECKIN_RESIDENTS, topics.CHECKIN_EVENTS])
        }
    finally:
        await admin.close()
    assert codes == {topics.CHECKIN_RESIDENTS: 0, topics.CHECKIN_EVENTS: 29}
