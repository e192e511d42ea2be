"""Kafka transport for the outbox relay: the producer's settings, and records queued as
record batches with the default partitioner's hash, cheaper per record than `send()`.
How much cheaper, and why it was needed, is in docs/performance.md.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

# Every relay's producer (and benchmarks that stand in for one). An idempotent producer has
# one request in flight, one batch per partition: big batches drain a backlog in few trips.
PRODUCER_CONFIG: dict[str, Any] = {
    "enable_idempotence": True,  # with acks=all: no duplicates or reordering from producer retries
    "acks": "all",
    "linger_ms": 2,
    "max_batch_size": 512 * 1024,
}


async def send_in_batches(
    producer: AIOKafkaProducer, records: Sequence[tuple[str, bytes, bytes]], headers: dict[str, str]
) -> list[asyncio.Future]:
    """Queue (topic, key, value) records in their order as record batches, one open batch per
    topic-partition; returns the batches' futures, which settle on the broker's ack.

    Appending to a batch skips the per-record future and metadata wait of `send()`; the
    partition is `send`'s (murmur2 of the key), so per-key order and guarantees are its."""
    encoded = [(name, text.encode()) for name, text in headers.items()]
    partitions: dict[str, list[int]] = {}
    open_batches: dict[tuple[str, int], Any] = {}
    acks: list[asyncio.Future] = []
    for topic, key, value in records:
        known = partitions.get(topic)
        if known is None:
            known = partitions[topic] = sorted(await producer.partitions_for(topic))
        partition = known[murmur2(key) % len(known)]
        batch = open_batches.get((topic, partition))
        if batch is None:
            batch = open_batches[(topic, partition)] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=encoded) is None:  # full: send it, start the next
            acks.append(await producer.send_batch(batch, topic, partition=partition))
            batch = open_batches[(topic, partition)] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=encoded) is None:
                raise MessageSizeTooLargeError(f"a {len(value)}-byte record for {topic} does not fit in a batch")
    for (topic, partition), batch in open_batches.items():
        acks.append(await producer.send_batch(batch, topic, partition=partition))
    return acks


_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]  # a key's 4-byte little-endian words, by count


def murmur2(key: bytes, m: int = 0x5BD1E995, mask: int = 0xFFFFFFFF) -> int:
    """Kafka's murmur2 of a key, made positive, as aiokafka's partitioner computes it, but a
    word at a time: byte by byte it was the batched relay's largest cost."""
    length = len(key)
    count = length >> 2
    h = 0x9747B28C ^ length
    for k in _WORDS[count].unpack_from(key) if count < 64 else struct.unpack_from(f"<{count}I", key):
        k = (k * m) & mask
        h = ((h * m) & mask) ^ (((k ^ (k >> 24)) * m) & mask)
    extra = length & 3
    if extra:
        tail = count << 2
        if extra == 3:
            h ^= key[tail + 2] << 16
        if extra >= 2:
            h ^= key[tail + 1] << 8
        h = ((h ^ key[tail]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return (h ^ (h >> 15)) & 0x7FFFFFFF
