"""Consumer lag measured against the real broker: committed offsets against end offsets,
per consumer group and topic, as `firstline_consumer_lag`."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from common.bus import Consumer
from common.runtime import Runtime
from common.settings import ServiceSettings
from support import kafka_client

pytestmark = pytest.mark.kafka


@pytest.fixture
async def topic(kafka):
    name = f"obs-lag-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka_client(bootstrap_servers=kafka))
    await admin.start()
    await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    try:
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def test_lag_is_what_the_group_has_not_committed(kafka, topic, tmp_path) -> None:
    group = f"obs-lag-{uuid.uuid4().hex[:8]}"
    settings = ServiceSettings(
        service="obs",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        kafka_bootstrap_servers=kafka,
        start_consumers=False,
        kafka_principal="operator",
    )
    runtime = Runtime(settings)
    runtime.consume(Consumer(name=group, topics=[topic], handlers={}, dead_letter_topic="obs.dlq.v1"))
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"x", partition=n % 2)  # 3 on partition 0, 2 on 1
    finally:
        await producer.stop()

    assert await runtime.measure_consumer_lag() == {}  # not connected to Kafka yet: nothing to say
    await runtime._connect()
    try:
        assert await runtime.measure_consumer_lag() == {group: {topic: 5}}  # nothing committed: all of it
        reader = AIOKafkaConsumer(**kafka_client(bootstrap_servers=kafka), group_id=group, enable_auto_commit=False)
        await reader.start()
        try:
            reader.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
            await reader.commit({TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 1})
        finally:
            await reader.stop()
        assert await runtime.measure_consumer_lag() == {group: {topic: 1}}
        assert runtime.metrics.consumer_lag.labels("obs", group, topic)._value.get() == 1
    finally:
        await runtime.stop()
