#!/usr/bin/env python3
"""Smoke test: does the broker work with the Python client the services use (aiokafka)?

Proves, against KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092):
  1. AIOKafkaAdminClient creates a topic with 3 partitions (and describes/deletes it);
  2. an idempotent producer (enable_idempotence=True, acks='all') writes keyed records with
     headers, spread over the partitions;
  3. a consumer group with enable_auto_commit=False reads part of them and commits explicitly
     with commit(); the committed offsets are read back;
  4. a new consumer in the same group resumes exactly at the committed offsets (no record
     lost, none seen twice), and the headers and keys came through intact;
  5. a transactional producer commits one transaction and aborts another, and a
     read_committed consumer sees only the committed one.

Exits 0 when everything held, 1 otherwise. Needs `pip install aiokafka` (0.14.0 is what
deploy/kafka/README.md was proven with). Topic and group names are unique per run, and the
topics are deleted at the end, so it can run repeatedly against the same broker.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from common.kafka import client_kwargs
from common.settings import StackSettings

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
# The broker is locked: connect as `operator` with the credentials kafka.sh created.
CLIENT = client_kwargs(StackSettings(), "operator")
PARTITIONS = 3
TOTAL = 60
FIRST_BATCH = 25
TIMEOUT_S = 120


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


async def consume_n(consumer: AIOKafkaConsumer, n: int, deadline_s: float = 30.0) -> list:
    """Read exactly n records one by one (getone advances the position per record, so a
    following commit() covers precisely what was returned)."""
    out = []
    end = time.monotonic() + deadline_s
    while len(out) < n:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"only {len(out)}/{n} records arrived within {deadline_s}s")
        out.append(await asyncio.wait_for(consumer.getone(), timeout=left))
    return out


async def drain(consumer: AIOKafkaConsumer, quiet_s: float = 3.0) -> list:
    """Read until nothing arrives for quiet_s."""
    out = []
    while True:
        batch = await consumer.getmany(timeout_ms=int(quiet_s * 1000))
        if not batch:
            return out
        for recs in batch.values():
            out.extend(recs)


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"smoke-{run}"
    tx_topic = f"smoke-tx-{run}"
    group = f"smoke-group-{run}"
    print(f"aiokafka smoke test against {BOOTSTRAP} (topic {topic}, group {group})")

    admin = AIOKafkaAdminClient(**CLIENT, client_id=f"smoke-admin-{run}")
    await admin.start()
    try:
        # 1. topics
        await admin.create_topics(
            [
                NewTopic(name=topic, num_partitions=PARTITIONS, replication_factor=1),
                NewTopic(name=tx_topic, num_partitions=PARTITIONS, replication_factor=1),
            ]
        )
        check(topic in await admin.list_topics(), f"topic {topic} created by AIOKafkaAdminClient")
        described = await admin.describe_topics([topic])
        parts = described[0]["partitions"]
        check(len(parts) == PARTITIONS, f"topic has {PARTITIONS} partitions (describe_topics)")

        # 2. idempotent producer with headers
        producer = AIOKafkaProducer(**CLIENT, enable_idempotence=True, acks="all", linger_ms=5)
        await producer.start()
        sent = {}
        try:
            futs = []
            for i in range(TOTAL):
                key = f"order-{i % 10}".encode()
                value = f"payload-{i}".encode()
                headers = [("event-id", f"{run}-{i}".encode()), ("event-type", b"SmokeTested")]
                futs.append((i, key, value, await producer.send(topic, value, key=key, headers=headers)))
            for i, key, value, fut in futs:
                md = await fut
                sent[(md.partition, md.offset)] = (key, value, f"{run}-{i}".encode())
        finally:
            await producer.stop()
        used = {p for p, _ in sent}
        check(len(sent) == TOTAL, f"{TOTAL} records acked (enable_idempotence=True, acks='all')")
        check(len(used) >= 2, f"records spread over {len(used)} partitions by key")

        # 3. consumer group, manual commit
        def new_consumer() -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                topic,
                **CLIENT,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )

        c1 = new_consumer()
        await c1.start()
        try:
            first = await consume_n(c1, FIRST_BATCH)
            await c1.commit()
            assignment = c1.assignment()
            committed = {tp: await c1.committed(tp) for tp in assignment}
        finally:
            await c1.stop()
        check(len(assignment) == PARTITIONS, f"first consumer was assigned all {PARTITIONS} partitions")
        expected = {}
        for r in first:
            tp = TopicPartition(r.topic, r.partition)
            expected[tp] = max(expected.get(tp, 0), r.offset + 1)
        check(
            all(committed[tp] == expected.get(tp, committed[tp]) for tp in assignment),
            f"commit() stored the consumed positions {sorted((tp.partition, o) for tp, o in committed.items() if o is not None)}",
        )

        # 4. restart: resume from the committed offsets
        c2 = new_consumer()
        await c2.start()
        try:
            rest = await consume_n(c2, TOTAL - FIRST_BATCH)
            extra = await drain(c2, quiet_s=2.0)
            await c2.commit()
        finally:
            await c2.stop()
        check(not extra, "no records beyond the expected total")
        seen = [(r.partition, r.offset) for r in first + rest]
        check(len(seen) == len(set(seen)), "second consumer resumed after the commit: no record seen twice")
        check(set(seen) == set(sent), f"all {TOTAL} records consumed exactly once across the restart")
        for r in first + rest:
            key, value, event_id = sent[(r.partition, r.offset)]
            hdrs = dict(r.headers)
            if (
                r.key != key
                or r.value != value
                or hdrs.get("event-id") != event_id
                or hdrs.get("event-type") != b"SmokeTested"
            ):
                raise AssertionError(f"record {r.partition}/{r.offset} mismatch: {r.key!r} {r.value!r} {r.headers!r}")
        print("  ok: keys, values and headers round-tripped")

        # 5. transactions + read_committed
        txp = AIOKafkaProducer(**CLIENT, transactional_id=f"smoke-tx-{run}")
        await txp.start()
        try:
            async with txp.transaction():
                await txp.send(tx_topic, b"committed", key=b"k")
            await txp.begin_transaction()
            await txp.send(tx_topic, b"aborted", key=b"k")
            await txp.abort_transaction()
        finally:
            await txp.stop()
        c3 = AIOKafkaConsumer(
            tx_topic,
            **CLIENT,
            group_id=f"{group}-tx",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c3.start()
        try:
            got = [r.value for r in await drain(c3, quiet_s=3.0)]
        finally:
            await c3.stop()
        check(got == [b"committed"], f"read_committed consumer saw only the committed transaction ({got})")
    finally:
        try:
            await admin.delete_topics([topic, tx_topic])
            print(f"  (deleted topics {topic}, {tx_topic})")
        except Exception as e:  # noqa: BLE001 - cleanup must not hide the real result
            print(f"  (could not delete test topics: {e!r})")
        await admin.close()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), timeout=TIMEOUT_S))
    except Exception as e:  # noqa: BLE001 - any failure is the smoke test's verdict
        print(f"SMOKE TEST FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    print("SMOKE TEST PASSED")
