"""Bench: the command center's event pipeline on PostgreSQL and the real broker.

1. Throughput: N `CheckInMissed` (default 100,000) staged in a producer's transactional
   outbox, published by the outbox relay to Kafka, consumed by the command center (one
   uvicorn process, or --replicas N sharing the consumer group) and committed as N
   follow-up tickets; timed from the relay's start to the
   last ticket committed. Baseline in the same run: a raw aiokafka consumer reading the
   same N messages from the same topic.
2. Latency: `HealthAnomalyReported` published at a steady rate (default 200/s) to the same
   command process; the time from each send to its `TicketOpened` arriving on
   command.events.v1 (matched by causation id). Baseline in the same run: the raw Kafka
   hop (send to a raw consumer receiving the same event).

Events go to a private topic (bench.command.<id>, 6 partitions like checkin.events.v1),
so nothing else consumes them; it is deleted afterwards.

    .venv/bin/python bench/command_pipeline.py [--events 100000] [--rate 200] [--seconds 20] [--replicas 1] [--only throughput|latency]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))

from _pg import fresh_database

from common import envelope as ce
from common.clock import SystemClock
from common.db import Database
from common.events.checkin import CheckInMissed, HealthAnomalyReported
from common.kafka import client_kwargs
from common.outbox import OutboxMessage, OutboxRelay, UnitOfWork
from common.settings import StackSettings
from common.transport import PRODUCER_CONFIG, send_in_batches

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def kafka() -> dict:
    """The benchmark's clients act as `operator` (KAFKA_SECURITY_PROTOCOL=PLAINTEXT measures
    an unlocked broker)."""
    return client_kwargs(StackSettings(), "operator")


PORT = 18955


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def stage_outbox(url: str, topic: str, count: int) -> Database:
    """The producer's side: N CheckInMissed committed to its outbox (not timed)."""
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda c: OutboxMessage.__table__.create(c))
    today = datetime.now(UTC).date()
    # Staged for the private topic as the producer would write them (rewriting the topic
    # afterwards left 100,000 dead rows for the relay to step over).
    CheckInMissed.topic, service_topic = topic, CheckInMissed.topic
    try:
        for start in range(0, count, 20_000):
            async with UnitOfWork(db, SystemClock()) as uow:
                for i in range(start, min(start + 20_000, count)):
                    uow.emit(CheckInMissed(resident_id=f"R-{i:07d}", date=today, consecutive_days=1,
                                           grid_id=f"G{i % 20 + 1}", building_id=f"B{i % 200:03d}"))  # fmt: skip
                await uow.commit()
    finally:
        CheckInMissed.topic = service_topic
    async with db.session() as session:
        assert await session.scalar(select(func.count()).where(OutboxMessage.topic != topic)) == 0
    return db


async def raw_consume(topic: str, count: int) -> float:
    """Baseline: a plain aiokafka consumer reading the same messages (and parsing the JSON)."""
    consumer = AIOKafkaConsumer(topic, **kafka(), group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=500)  # fmt: skip
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    json.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def wait_ready(client: httpx.AsyncClient, port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the command process did not become ready")


async def wait_group(admin: AIOKafkaAdminClient, group: str, members: int) -> None:
    """Until every replica has joined the consumer group and the partitions are shared out,
    so no rebalance falls inside the timed part."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (described,) = (await admin.describe_consumer_groups([group]))[0].to_object()["groups"]
        if described["state"] == "Stable" and len(described["members"]) == members:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"consumer group {group} did not settle with {members} members")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_part(replicas: list[int]) -> dict[str, float]:
    """CPU seconds used so far by the command replicas, this process (the producer's relay and
    the polls), PostgreSQL's and Kafka's processes, and the whole machine (everything busy)."""
    parts = {
        "command": sum(cpu_seconds(pid) for pid in replicas),
        "producer": time.process_time(),
        "postgres": 0.0,
        "kafka": 0.0,
    }
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"postgres") or b"/bin/postgres" in cmdline:
            parts["postgres"] += cpu_seconds(int(proc.name))
        elif b"kafka.Kafka" in cmdline:
            parts["kafka"] += cpu_seconds(int(proc.name))
    busy = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    parts["machine"] = (sum(map(int, busy)) - int(busy[3]) - int(busy[4])) / os.sysconf(
        "SC_CLK_TCK"
    )  # all but idle, iowait
    return parts


async def committed(admin: AIOKafkaAdminClient, group: str) -> int:
    """Records the command center's consumer group has committed (its topic starts empty).
    Offsets are committed only after a batch's tickets are (DESIGN.md: commit after
    processing), so this never runs ahead of the tickets, and costs PostgreSQL nothing."""
    return sum(o.offset for o in (await admin.list_consumer_group_offsets(group)).values() if o.offset > 0)


async def throughput(src_url: str, dsn: str, topic: str, count: int, replicas: list[int], admin: AIOKafkaAdminClient,
                     group: str) -> tuple[float, float, float, float, dict[str, float]]:  # fmt: skip
    db = await stage_outbox(src_url, topic, count)
    producer = AIOKafkaProducer(**kafka(), **PRODUCER_CONFIG)  # as a service's relay
    await producer.start()

    async def publish(records, headers: dict[str, str]):
        return await send_in_batches(producer, records, headers)

    relay = OutboxRelay(db, publish, clock=SystemClock(), batch_size=2000)
    conn = await asyncpg.connect(dsn)
    cpu_before = cpu_by_part(replicas)
    started = time.perf_counter()
    relay_task = asyncio.create_task(relay.run())
    published_at = None
    try:
        # Polled every 0.2 s, so the polls must be cheap beside the work they watch: counting
        # the inbox each time cost ~1.5 s of PostgreSQL's time per run; the group's offsets
        # cost it nothing. The counts are checked once, at the end.
        while True:
            await asyncio.sleep(0.2)
            if published_at is None and not await any_unsent(db):
                published_at = time.perf_counter() - started
            consumed = await committed(admin, group)
            if consumed >= count:
                break
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {consumed} events consumed after 600 s")
        elapsed = time.perf_counter() - started
        cpu = {part: used - cpu_before[part] for part, used in cpu_by_part(replicas).items()}
        applied = await conn.fetchval("SELECT count(*) FROM inbox")
        tickets = await conn.fetchval("SELECT count(*) FROM ticket")
        if applied != count or tickets != count:
            raise RuntimeError(f"{consumed} events consumed, {applied} applied, {tickets} tickets committed")
        # The command center's own outbox (100,000 TicketOpened) drains before the latency run.
        while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL)"):
            await asyncio.sleep(0.2)
        drained = time.perf_counter() - started
    finally:
        relay.stop()
        await relay_task
        await producer.stop()
        await conn.close()
        await db.dispose()
    return elapsed, published_at or elapsed, drained, await raw_consume(topic, count), cpu


async def any_unsent(db: Database) -> bool:
    async with db.session() as session:
        return bool(await session.scalar(select(OutboxMessage.seq).where(OutboxMessage.sent_at.is_(None)).limit(1)))


async def latency(topic: str, rate: int, seconds: int) -> tuple[list[float], list[float]]:
    count = rate * seconds
    sent: dict[str, float] = {}
    hop: dict[str, float] = {}
    opened: dict[str, float] = {}
    raw = AIOKafkaConsumer(topic, **kafka(), group_id=None, auto_offset_reset="latest")
    tickets = AIOKafkaConsumer("command.events.v1", **kafka(), group_id=None, auto_offset_reset="latest")
    await raw.start()
    await tickets.start()
    for consumer in (raw, tickets):  # position at the end now, before anything is sent
        await consumer.getmany(timeout_ms=1000)
        await consumer.seek_to_end()

    staged: dict[str, float] = {}  # when the command center staged the TicketOpened (its envelope's time)

    async def read(consumer: AIOKafkaConsumer, into: dict[str, float], pick) -> None:
        while len(into) < count:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.perf_counter()
                for record in records:
                    event = json.loads(record.value)
                    key = pick(event)
                    if key in sent:
                        into.setdefault(key, now)
                        if event["type"] == "TicketOpened":
                            staged[key] = now - (time.time() - datetime.fromisoformat(event["time"]).timestamp())

    readers = [
        asyncio.create_task(read(raw, hop, lambda e: e["id"])),
        asyncio.create_task(
            read(tickets, opened, lambda e: e.get("causationid") if e["type"] == "TicketOpened" else None)
        ),
    ]
    producer = AIOKafkaProducer(**kafka(), acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    today = date.today()
    started = time.perf_counter()
    for i in range(count):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event = HealthAnomalyReported(resident_id=f"F-{uuid.uuid4().hex[:10]}", date=today, temperature_c=38.5, symptoms=["cough"],
                                      grid_id="G1", building_id="B001", fever=True, lat=31.23, lon=121.47)  # fmt: skip
        envelope = ce.wrap(event, at=datetime.now(UTC))
        sent[envelope.id] = time.perf_counter()
        await producer.send(topic, ce.encode(envelope), key=envelope.subject.encode())
    await producer.flush()
    try:
        await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
    finally:
        for task in readers:
            task.cancel()
        await producer.stop()
        await raw.stop()
        await tickets.stop()
    consumed = [(staged[k] - sent[k]) * 1000 for k in staged]
    print(
        f"  (split: send -> TicketOpened staged by the consumer p50 {statistics.median(consumed):.0f} ms, "
        f"p99 {percentile(consumed, 99):.0f} ms; the rest is the command center's outbox relay to Kafka)"
    )
    return [(opened[k] - sent[k]) * 1000 for k in opened], [(hop[k] - sent[k]) * 1000 for k in hop]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--only", choices=["throughput", "latency"], help="run one of the two parts")
    parser.add_argument("--replicas", type=int, default=1, help="command-center processes sharing the consumer group")
    args = parser.parse_args()
    topic = f"bench.command.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka())
    await admin.start()
    # Replicated as the catalog's topics are on this broker (FIRSTLINE_KAFKA_REPLICATION: 3 on a
    # three-node cluster, with min.insync.replicas 2).
    replication = int(os.environ.get("FIRSTLINE_KAFKA_REPLICATION", "1"))
    configs = {"min.insync.replicas": str(max(1, replication - 1))}
    await admin.create_topics([NewTopic(topic, 6, replication, topic_configs=configs)])
    try:
        async with fresh_database("bench_cmd_src") as (src_url, _), fresh_database("bench_cmd") as (url, dsn):
            with tempfile.TemporaryDirectory() as tmp:
                group = f"bench-command-{uuid.uuid4().hex[:8]}"
                env = {**os.environ, "COMMAND_DATABASE_URL": url, "COMMAND_CONSUMER_GROUP": group,
                       "COMMAND_CONSUMER_TOPICS": json.dumps([topic]), "COMMAND_JOBS_INTERVAL_S": "0",
                       "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "FIRSTLINE_ENV_FILE": "/nonexistent", "COMMAND_LOG_LEVEL": "WARNING",
                       # its topic and group are the benchmark's, outside the catalog's ACLs
                       "COMMAND_KAFKA_PRINCIPAL": "operator"}  # fmt: skip
                logs = [Path(tmp) / f"command-{i}.log" for i in range(args.replicas)]
                replicas = []
                try:
                    for i, log in enumerate(logs):  # one after another: the first runs the migrations
                        replicas.append(subprocess.Popen(
                            [str(ROOT / ".venv/bin/uvicorn"), "--factory", "command.main:app_from_env", "--host", "127.0.0.1",
                             "--port", str(PORT + i), "--no-access-log", "--log-level", "warning"],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
                        ))  # fmt: skip
                        async with httpx.AsyncClient() as client:
                            await wait_ready(client, PORT + i)
                    await wait_group(admin, group, args.replicas)
                    elapsed = published = drained = raw = cpu = None
                    to_ticket = hop = None
                    if args.only != "latency":
                        elapsed, published, drained, raw, cpu = await throughput(
                            src_url, dsn, topic, args.events, [replica.pid for replica in replicas], admin, group
                        )
                    if args.only != "throughput":
                        to_ticket, hop = await latency(topic, args.rate, args.seconds)
                    report(
                        args, elapsed, published, drained, raw, cpu, to_ticket, hop
                    )  # before the teardown, which may fail
                except BaseException:
                    for log in logs:
                        if log.exists():
                            print(log.read_text()[-3000:], file=sys.stderr)
                    raise
                finally:
                    for replica in replicas:
                        replica.terminate()
                    for replica in replicas:
                        replica.wait(timeout=30)
    finally:
        await admin.delete_topics([topic])
        await admin.close()


def machine() -> str:
    """The processor, so figures from different machines are not compared as if alike."""
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]  # fmt: skip
    return f"{models[0] if models else 'unknown processor'}, {os.cpu_count()} CPUs"


def report(args, elapsed, published, drained, raw, cpu, to_ticket, hop) -> None:
    n = args.events
    print(f"machine: {machine()}; Kafka {BOOTSTRAP}, replication {os.environ.get('FIRSTLINE_KAFKA_REPLICATION', '1')}")
    if elapsed is None:
        report_latency(args, to_ticket, hop)
        return
    print(
        f"throughput: {n:,} CheckInMissed outbox -> Kafka -> command ({args.replicas} replica{'s' * (args.replicas > 1)}) "
        f"-> {n:,} tickets committed (PostgreSQL)"
    )
    print(
        f"  end to end: {elapsed:.1f} s ({n / elapsed:,.0f} events/s); relay had published all after {published:.1f} s; "
        f"the command center's TicketOpened all on Kafka after {drained:.1f} s"
    )
    print(f"  baseline, raw aiokafka consumer of the same {n:,} messages: {raw:.1f} s ({n / raw:,.0f} msg/s)")
    print(
        f"  ratio: end to end takes {elapsed / raw:.1f}x the raw consumer's time; target <= 20 s: {'met' if elapsed <= 20 else 'NOT met'}"
    )
    ours = cpu["command"] + cpu["producer"] + cpu["postgres"] + cpu["kafka"]
    print(
        f"  CPU in the timed part: command {cpu['command']:.1f} s ({cpu['command'] / n * 1e6:.0f} µs per event), "
        f"producer's relay and polls {cpu['producer']:.1f} s, PostgreSQL {cpu['postgres']:.1f} s, Kafka {cpu['kafka']:.1f} s; "
        f"the machine {cpu['machine']:.1f} s of {elapsed * os.cpu_count():.1f} (others: {max(cpu['machine'] - ours, 0):.1f} s)"
    )
    if to_ticket is not None:
        report_latency(args, to_ticket, hop)


def report_latency(args, to_ticket, hop) -> None:
    print(
        f"latency at {args.rate} HealthAnomalyReported/s for {args.seconds} s, {args.replicas} command replica(s) "
        f"({len(to_ticket)}/{args.rate * args.seconds} matched):"
    )
    print(f"  published -> TicketOpened on command.events.v1: p50 {statistics.median(to_ticket):.0f} ms, "
          f"p95 {percentile(to_ticket, 95):.0f} ms, p99 {percentile(to_ticket, 99):.0f} ms, max {max(to_ticket):.0f} ms")  # fmt: skip
    print(
        f"  baseline, raw Kafka hop (send -> raw consumer): p50 {statistics.median(hop):.0f} ms, p99 {percentile(hop, 99):.0f} ms"
    )
    print(f"  target p99 <= 250 ms: {'met' if percentile(to_ticket, 99) <= 250 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
