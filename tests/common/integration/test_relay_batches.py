"""The relay's batch publisher against the real broker: every record arrives once, on the
partition `send` would have chosen for its key, in order per key, across several batches."""

from __future__ import annotations

import asyncio
import os
import random
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from test_pipeline import new_topics

from common.transport import PRODUCER_CONFIG, murmur2, send_in_batches
from support import TopicReader, kafka_client, wait_for


def test_murmur2_is_the_default_partitioners_hash():
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randint(0, 300)) for _ in range(20_000)] + [f"T-{i:012x}".encode() for i in range(500)]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) & 0x7FFFFFFF for k in keys]
    partitions = list(range(6))
    assert [partitions[murmur2(k) % 6] for k in keys] == [DefaultPartitioner()(k, partitions, partitions) for k in keys]


@pytest.mark.kafka
async def test_records_in_batches_keep_per_key_order_and_the_partition_send_chooses(kafka):
    topic, other = f"test.batches.{uuid.uuid4().hex[:8]}", f"test.batches.{uuid.uuid4().hex[:8]}"
    await new_topics(kafka, topic, other)
    # Small batches, so each partition's records fill several and the rollover is exercised.
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka), **{**PRODUCER_CONFIG, "max_batch_size": 4096})
    await producer.start()
    keys = [f"K-{i}-{uuid.uuid4().hex[:6]}".encode() for i in range(40)]
    records = [(topic if i % 5 else other, keys[i % 40], f"{i}:{os.urandom(60).hex()}".encode()) for i in range(3000)]
    try:
        async with TopicReader(kafka, topic) as reader, TopicReader(kafka, other) as other_reader:
            acks = await send_in_batches(producer, records, {"content-type": "application/cloudevents+json"})
            await asyncio.wait_for(asyncio.gather(*acks), timeout=30)
            assert len(acks) > 2 * 3  # more batches than partitions: rollover happened

            async def all_arrived() -> bool:
                await reader.poll()
                await other_reader.poll()
                return len(reader.records) + len(other_reader.records) >= 3000

            await wait_for(all_arrived, timeout=30, what="all 3,000 records")
            # Where plain send() puts a key, for comparison.
            chosen = {}
            for index, key in enumerate(keys[:8]):
                sent_to = topic if index % 5 else other  # where the key's records went
                chosen[key] = (sent_to, (await (await producer.send(sent_to, b"probe", key=key))).partition)
    finally:
        await producer.stop()
    got = [r for r in reader.records + other_reader.records if r.value != b"probe"]
    assert sorted(int(r.value.split(b":")[0]) for r in got) == list(range(3000))  # each once
    for key in keys:
        for t in (topic, other):
            mine = [r for r in got if r.key == key and r.topic == t]
            assert [int(r.value.split(b":")[0]) for r in mine] == sorted(int(r.value.split(b":")[0]) for r in mine)
            assert len({r.partition for r in mine}) <= 1
    for key, (sent_to, partition) in chosen.items():
        assert {r.partition for r in got if r.key == key and r.topic == sent_to} == {partition}
    assert all(dict(r.headers)["content-type"] == b"application/cloudevents+json" for r in got)
