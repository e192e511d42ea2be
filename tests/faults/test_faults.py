"""The fault suite: real processes killed with SIGKILL (services, a Kafka node, PostgreSQL
stopped under load), and every accepted write counted where it must end up: the service's
database, Kafka (once per event id, after deduplication), the downstream service. Each
experiment adds a row to the table (harness.TABLE) and fails on any loss or duplicate.

`make test` runs the short sizes; `make faults` (FIRSTLINE_FAULTS=full) the full ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from harness import (
    CONSUMING,
    VAR,
    Kafka,
    Postgres,
    Row,
    Service,
    admin,
    burst,
    envelopes,
    group,
    per_subject,
    record,
    register,
    residents,
    size,
    sqlite_url,
)

from common.clock import local_date
from common.events.base import event_class
from support import wait_for

pytestmark = pytest.mark.faults
TODAY = local_date(datetime.now(UTC), ZoneInfo("Asia/Shanghai"))
YESTERDAY = TODAY - timedelta(days=1)
REGISTERED = str(TODAY - timedelta(days=3))


async def drained(service: Service, timeout: float = 180) -> None:
    """The service's outbox has published everything."""

    async def empty() -> bool:
        return (await service.query("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))[0][0] == 0

    await wait_for(empty, timeout=timeout, interval=0.2, what=f"{service.name}'s outbox to drain")


async def tickets(command: Service, kind: str) -> Counter:
    rows = await command.query("SELECT resident_id FROM ticket WHERE kind = $1", kind)
    return Counter(r[0] for r in rows)


async def stored_checkins(checkin: Service) -> tuple[set[str], Counter]:
    """Residents with a check-in today, and submissions per resident (more than one: a retry
    was applied twice)."""
    days = {r[0] for r in await checkin.query("SELECT resident_id FROM daily_checkin")}
    submissions = Counter(r[0] for r in await checkin.query("SELECT resident_id FROM checkin_submission"))
    return days, submissions


def stop_all(*services: Service) -> None:
    for service in services:
        service.stop()


# -- 1. the command center killed while it consumes a sweep --------------------------------


async def sweep_with_command_killed(kafka: Kafka, commands: list[Service], *, restart: bool, name: str) -> Row:
    checkin = Service("checkin", kafka, sqlite_url("checkin"), CHECKIN_CONSUMER_GROUP=group("checkin"))
    consumer_group = commands[0].env["COMMAND_CONSUMER_GROUP"]
    await kafka.groups_at_the_end({consumer_group: CONSUMING["command"], checkin.env["CHECKIN_CONSUMER_GROUP"]:
                                   CONSUMING["checkin"]})  # fmt: skip
    checkin.start()
    for command in commands:  # one after another: the first migrates (the others would wait on its lock)
        command.start()
        await command.ready()
    await checkin.ready()
    try:
        n = size(1500, 5000)
        await register(checkin, n, REGISTERED)
        start = await kafka.ends("checkin.events.v1")
        async with httpx.AsyncClient(base_url=checkin.url, timeout=120) as client:
            swept = await client.post("/sweeps", json={"date": str(YESTERDAY)}, headers=admin())
        assert swept.status_code == 200, swept.text
        missed = swept.json()["missed"]
        victim = commands[0]

        async def started() -> bool:  # mid-stream: some tickets, not all
            return sum((await tickets(victim, "followup")).values()) >= min(100, n // 10)

        await wait_for(started, timeout=120, interval=0.02, what="the command center to start on the sweep")
        before_kill = sum((await tickets(victim, "followup")).values())
        victim.kill9()
        killed = time.monotonic()
        if restart:
            victim.start()

        async def all_there() -> bool:
            return len(await tickets(victim, "followup")) >= missed

        await wait_for(all_there, timeout=300, interval=0.2, what=f"{missed} follow-up tickets")
        recovery = time.monotonic() - killed
        await drained(checkin)
        events, copies = envelopes(await kafka.read("checkin.events.v1", start), "CheckInMissed")
        ids = set(await residents(checkin))
        on_kafka = per_subject(events, ids)
        opened = await tickets(victim, "followup")
        return record(
            Row(
                name,
                sent=missed,
                accepted=len(on_kafka),
                applied=len(opened),
                lost=len(ids - set(opened)) + len(ids - set(on_kafka)),
                duplicated=sum(c - 1 for c in opened.values() if c > 1)
                + sum(c - 1 for c in on_kafka.values() if c > 1),
                redelivered=copies,
                recovery_s=recovery,
                note=f"killed after {before_kill} tickets; recovery: kill -> last ticket",
            )
        )
    finally:
        stop_all(checkin, *commands)


async def test_command_killed_mid_sweep_every_missed_resident_has_one_followup(single):
    command = Service("command", single, sqlite_url("command"), COMMAND_CONSUMER_GROUP=group("command"))
    await sweep_with_command_killed(single, [command], restart=True, name="kill -9 command mid-sweep (SQLite)")


async def test_two_command_replicas_on_postgres_one_killed_mid_stream(single, postgres: Postgres):
    url, consumer_group = postgres.database("faults_command"), group("command")
    replicas = [Service("command", single, url, index=i, COMMAND_CONSUMER_GROUP=consumer_group) for i in range(2)]
    await sweep_with_command_killed(single, replicas, restart=False, name="2 command replicas (PostgreSQL), 1 killed")


# -- 2. the check-in service killed during a burst -------------------------------------------


async def test_checkin_killed_during_a_burst_every_2xx_exists_once_and_is_on_kafka_once(single):
    checkin = Service("checkin", single, sqlite_url("checkin"), CHECKIN_CONSUMER_GROUP=group("checkin"))
    await single.groups_at_the_end({checkin.env["CHECKIN_CONSUMER_GROUP"]: CONSUMING["checkin"]})
    checkin.start()
    await checkin.ready()
    try:
        n = size(400, 3000)
        await register(checkin, n, REGISTERED)
        ids = await residents(checkin)
        start = await single.ends("checkin.events.v1")
        killed: list[float] = []

        async def fault() -> None:
            checkin.kill9()
            killed.append(time.monotonic())
            checkin.start()  # as the supervisor does

        result = await burst(checkin.url, ids, fault_after=n // 3, fault=fault)
        await checkin.ready()
        await drained(checkin)
        days, submissions = await stored_checkins(checkin)
        events, copies = envelopes(await single.read("checkin.events.v1", start), "CheckInSubmitted")
        on_kafka = per_subject(events, set(ids))
        record(
            Row(
                "kill -9 checkin mid-burst",
                sent=n,
                accepted=len(result.accepted),
                applied=len(days & result.accepted),
                lost=len(result.accepted - days) + len(result.accepted - set(on_kafka)),
                duplicated=sum(c - 1 for c in submissions.values() if c > 1)
                + sum(c - 1 for c in on_kafka.values() if c > 1),
                redelivered=copies,
                recovery_s=(result.recovered_at or killed[0]) - killed[0],
                note=f"answers {dict(result.answers)}; retried with Idempotency-Key; recovery: kill -> next 2xx",
            )
        )
        assert result.accepted == set(ids)
    finally:
        stop_all(checkin)


# -- 3. a Kafka node killed mid-burst -------------------------------------------------------


async def burst_with_broker_fault(kafka: Kafka, name: str, fault, heal) -> Row:
    checkin = Service("checkin", kafka, sqlite_url("checkin"), CHECKIN_CONSUMER_GROUP=group("checkin"))
    command = Service("command", kafka, sqlite_url("command"), COMMAND_CONSUMER_GROUP=group("command"))
    await kafka.groups_at_the_end({command.env["COMMAND_CONSUMER_GROUP"]: CONSUMING["command"],
                                   checkin.env["CHECKIN_CONSUMER_GROUP"]: CONSUMING["checkin"]})  # fmt: skip
    for service in (checkin, command):
        service.start()
    for service in (checkin, command):
        await service.ready()
    try:
        n = size(500, 3000)
        await register(checkin, n, REGISTERED)
        ids = await residents(checkin)
        start = await kafka.ends("checkin.events.v1")
        faulted: list[float] = []

        async def inject() -> None:
            await fault()
            faulted.append(time.monotonic())

        # No retries: during the outage every check-in must be answered 2xx at once.
        result = await burst(checkin.url, ids, fault_after=n // 4, fault=inject, retry=False)
        assert faulted, "the fault was never injected"
        await heal()

        async def all_tickets() -> bool:
            return len(await tickets(command, "fever")) >= len(result.accepted)

        await wait_for(all_tickets, timeout=300, interval=0.2, what="a fever ticket for every accepted check-in")
        recovery = time.monotonic() - faulted[0]
        await drained(checkin)
        days, submissions = await stored_checkins(checkin)
        events, copies = envelopes(await kafka.read("checkin.events.v1", start), "CheckInSubmitted")
        on_kafka = per_subject(events, set(ids))
        opened = await tickets(command, "fever")
        row = record(
            Row(
                name,
                sent=n,
                accepted=len(result.accepted),
                applied=len(set(opened) & result.accepted),
                lost=len(result.accepted - days)
                + len(result.accepted - set(on_kafka))
                + len(result.accepted - set(opened)),
                duplicated=sum(c - 1 for c in submissions.values() if c > 1)
                + sum(c - 1 for c in on_kafka.values() if c > 1)
                + sum(c - 1 for c in opened.values() if c > 1),
                redelivered=copies,
                recovery_s=recovery,
                note=f"answers {dict(result.answers)}; recovery: fault -> last ticket",
            )
        )
        assert result.accepted == set(ids), f"not every check-in was answered 2xx: {dict(result.answers)}"
        for service in (checkin, command):  # neither was restarted
            assert service.process is not None and service.process.poll() is None
        return row
    finally:
        stop_all(checkin, command)


async def test_single_broker_killed_mid_burst_answers_stay_2xx_and_nothing_is_lost(single):
    outage: dict[str, float] = {}

    async def fault() -> None:
        single.kill9(1)
        outage["killed"] = time.monotonic()

    async def heal() -> None:
        await asyncio.to_thread(single.start)

    await burst_with_broker_fault(single, "kill -9 the only broker mid-burst, restart", fault, heal)


async def test_cluster_partition_leader_killed_mid_burst_no_acknowledged_event_lost(cluster):
    victim: list[int] = []

    async def fault() -> None:
        leader = await cluster.leader("checkin.events.v1", 0)
        victim.append(leader)
        cluster.kill9(leader)

    async def heal() -> None:
        pass  # the two others carry on; the node comes back after the counts (for later runs)

    try:
        await burst_with_broker_fault(cluster, "3 nodes: kill -9 the leader of checkin.events.v1/0", fault, heal)
    finally:
        await asyncio.to_thread(cluster.start)


# -- 4. PostgreSQL restarted under load -----------------------------------------------------


async def test_postgres_restarted_under_load_503_with_a_reason_then_recovery(single, postgres: Postgres):
    checkin = Service("checkin", single, postgres.database("faults_checkin"), CHECKIN_CONSUMER_GROUP=group("checkin"))
    await single.groups_at_the_end({checkin.env["CHECKIN_CONSUMER_GROUP"]: CONSUMING["checkin"]})
    checkin.start()
    await checkin.ready()
    try:
        n = size(400, 2000)
        await register(checkin, n, REGISTERED)
        ids = await residents(checkin)
        start = await single.ends("checkin.events.v1")
        seen: dict[str, object] = {}

        async def fault() -> None:
            seen["stopping"] = time.monotonic()
            await asyncio.to_thread(postgres.stop)
            async with httpx.AsyncClient(base_url=checkin.url, timeout=10) as client:
                ready = await client.get("/readyz")
                seen["readyz"] = (ready.status_code, ready.json())

                async def refused_a_few() -> bool:  # check-ins meet the outage before it ends
                    answer = await client.post(
                        "/checkins", json={"resident_id": ids[0], "temperature_c": 36.5}, headers=admin()
                    )
                    seen.setdefault("answer", (answer.status_code, answer.json(), answer.headers.get("Retry-After")))
                    return answer.status_code == 503

                await wait_for(refused_a_few, timeout=30, what="a 503 while PostgreSQL is down")
            await asyncio.to_thread(postgres.start)
            seen["started"] = time.monotonic()

        result = await burst(checkin.url, ids, fault_after=n // 4, fault=fault)
        await drained(checkin)
        days, submissions = await stored_checkins(checkin)
        events, copies = envelopes(await single.read("checkin.events.v1", start), "CheckInSubmitted")
        on_kafka = per_subject(events, set(ids))
        status, body, retry_after = seen["answer"]  # type: ignore[misc]
        record(
            Row(
                "PostgreSQL stopped and started under load",
                sent=n,
                accepted=len(result.accepted),
                applied=len(days & result.accepted),
                lost=len(result.accepted - days) + len(result.accepted - set(on_kafka)),
                duplicated=sum(c - 1 for c in submissions.values() if c > 1)
                + sum(c - 1 for c in on_kafka.values() if c > 1),
                redelivered=copies,
                recovery_s=(result.recovered_at or seen["started"]) - seen["stopping"],  # type: ignore[operator]
                note=f"answers {dict(result.answers)}; PostgreSQL stopped, then started {seen['started'] - seen['stopping']:.1f} s "  # type: ignore[operator]
                "after the stop began; recovery: stop begun -> next 2xx (the outage clients saw)",
            )
        )
        assert status == 503 and body["reason"] == "database-unavailable" and retry_after, seen
        assert seen["readyz"][0] == 503, seen  # type: ignore[index]
        assert not result.bad_bodies, result.bad_bodies[:3]  # every 5xx a JSON 503 with Retry-After
        assert not [k for k in result.answers if isinstance(k, str)], result.answers  # no dropped connection
        assert result.accepted == set(ids)
    finally:
        stop_all(checkin)


# -- 5. a full or read-only disk ------------------------------------------------------------


@pytest.fixture
def tiny_disk():
    """A 16 MB tmpfs of our own (mount needs root; skipped otherwise)."""
    path = VAR / f"tmpfs-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)]).returncode:
        path.rmdir()
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)


async def test_full_disk_answers_503_with_a_reason_never_a_dropped_connection(single, tiny_disk: Path):
    """A disk that fills up under a burst: every check-in is answered (503, JSON reason
    disk-full, Retry-After) and none is half-written; freed, the same check-ins succeed once.
    (A read-only remount needs no open writer, which a running SQLite always is: the
    read-only reason is tested in tests/common.)"""
    checkin = Service("checkin", single, f"sqlite+aiosqlite:///{tiny_disk}/checkin.db",
                      CHECKIN_CONSUMER_GROUP=group("checkin"))  # fmt: skip
    checkin.start()
    await checkin.ready()
    try:
        n = 200
        await register(checkin, n, REGISTERED)
        ids = await residents(checkin)
        filler = tiny_disk / "filler"
        with filler.open("wb") as out:  # fill the disk to the last byte
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        full = await burst(checkin.url, ids[:120], retry=False)
        async with httpx.AsyncClient(base_url=checkin.url, timeout=10) as client:
            answer = await client.post(
                "/checkins", json={"resident_id": ids[0], "temperature_c": 36.5}, headers=admin()
            )
        filler.unlink()
        after = await burst(checkin.url, ids, deadline_s=60)
        days, submissions = await stored_checkins(checkin)
        dropped = sum(v for k, v in full.answers.items() if isinstance(k, str))
        record(
            Row(
                "full disk under a burst (SQLite on a 16 MB tmpfs)",
                sent=len(ids[:120]) + n,
                accepted=len(full.accepted | after.accepted),
                applied=len(days),
                lost=len((full.accepted | after.accepted) - days),
                duplicated=sum(c - 1 for c in submissions.values() if c > 1),
                note=f"disk full: {dict(full.answers)}, {dropped} dropped connections; freed: {dict(after.answers)}",
            )
        )
        assert answer.status_code == 503 and answer.json()["reason"] == "disk-full", answer.text
        assert answer.headers["Retry-After"] and "磁盘已满" in answer.json()["detail"]
        assert dropped == 0 and not full.bad_bodies, (full.answers, full.bad_bodies[:3])
        assert full.answers[503] > 0 and not full.accepted & set(ids[:120]) - days
        assert after.accepted == set(ids)
    finally:
        stop_all(checkin)


# -- 6. garbage on every consumed topic -----------------------------------------------------


def handled_types(kafka: Kafka) -> dict[str, set[str]]:
    """Each consumer group's event types, from the services' own runtimes (built, not started,
    one process each: every service owns its tables, and two in one process would clash)."""
    out: dict[str, set[str]] = {}
    for service in CONSUMING:
        code = (f"import json; from {service}.main import create_app; app = create_app(); "
                "print(json.dumps(sorted({t for r in app.state.runtime.runners for t in r.consumer._by_type})))")  # fmt: skip
        env = {**os.environ, **kafka.env(), f"{service.upper()}_DATABASE_URL": "sqlite+aiosqlite:///:memory:",
               "FIRSTLINE_ENV_FILE": str(VAR / "none.env")}  # fmt: skip
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        out[service] = set(json.loads(result.stdout.strip().splitlines()[-1]))
    return out


def class_of(event_type: str):
    return next(c for c in (event_class(event_type, v) for v in range(1, 10)) if c is not None)


def wrong_version(event_type: str) -> bytes:
    cls = class_of(event_type)
    return json.dumps({
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": f"/firstline/{cls.service}", "type": event_type,
        "subject": "faults", "time": datetime.now(UTC).isoformat(), "datacontenttype": "application/json",
        "dataschema": f"urn:firstline:{cls.service}:{event_type}:99", "data": {"from": "the future"},
    }).encode()  # fmt: skip


async def test_garbage_oversized_and_wrongly_versioned_records_are_dead_lettered_on_every_consumed_topic(single):
    handled = handled_types(single)
    services = {s: Service(s, single, sqlite_url(s), **{f"{s.upper()}_CONSUMER_GROUP": group(s)}) for s in CONSUMING}
    groups = {s: svc.env[f"{s.upper()}_CONSUMER_GROUP"] for s, svc in services.items()}
    await single.groups_at_the_end({groups[s]: topics for s, topics in CONSUMING.items()})
    for service in services.values():
        service.start()
    for service in services.values():
        await service.ready()
    try:
        dlqs = {s: f"{s}.dlq.v1" for s in CONSUMING}
        starts = {s: await single.ends(topic) for s, topic in dlqs.items()}
        topics = sorted({t for ts in CONSUMING.values() for t in ts})
        expected: dict[str, set[str]] = {s: set() for s in CONSUMING}
        producer = AIOKafkaProducer(**single.client(), max_request_size=2_000_000)
        await producer.start()
        sent = 0
        try:
            for topic in topics:
                readers = [s for s, ts in CONSUMING.items() if topic in ts]
                records = {f"garbage:{topic}": b"\x00\xff not an event", f"oversized:{topic}": b'{"data": "' + b"x" * 1_000_000 + b'"}'}  # fmt: skip
                for s in readers:  # a type this reader applies, from a version that does not exist
                    for event_type in sorted(t for t in handled[s] if class_of(t).topic == topic)[:1]:
                        records[f"version:{topic}:{event_type}"] = wrong_version(event_type)
                for key, value in records.items():
                    await producer.send_and_wait(topic, value, key=key.encode())
                    sent += 1
                    for s in readers:
                        kind = key.split(":")[0]
                        if kind != "version" or key.split(":")[2] in handled[s]:
                            expected[s].add(key)
        finally:
            await producer.stop()

        found: dict[str, dict[str, str]] = {}

        async def all_dead_lettered() -> bool:
            for s, dlq in dlqs.items():
                found[s] = {
                    r.key.decode(): dict(r.headers).get("dlq-reason", b"").decode()
                    for r in await single.read(dlq, starts[s])
                    if r.key and dict(r.headers).get("dlq-consumer") == groups[s].encode()
                }
            return all(expected[s] <= set(found[s]) for s in CONSUMING)

        await wait_for(all_dead_lettered, timeout=180, interval=0.5, what="every bad record in its DLQ")

        async def kept_going() -> bool:  # each group committed past the bad records
            for s, ts in CONSUMING.items():
                ends = 0
                for topic in ts:
                    ends += sum((await single.ends(topic)).values())
                if await single.committed(groups[s]) < ends:
                    return False
            return True

        await wait_for(kept_going, timeout=120, interval=0.5, what="every consumer to commit past the bad records")
        want = sum(len(keys) for keys in expected.values())
        got = sum(len(expected[s] & set(found[s])) for s in CONSUMING)
        without_reason = [(s, k) for s in CONSUMING for k in expected[s] if not found[s].get(k)]
        record(
            Row(
                "garbage / oversized / version 99 on every consumed topic",
                sent=sent,
                accepted=want,
                applied=got,
                lost=want - got + len(without_reason),
                duplicated=0,
                note=f"{len(topics)} topics, {len(CONSUMING)} consumer groups; every dead letter has a reason; "
                "every group committed past them",
            )
        )
        assert all(s.process.poll() is None for s in services.values())  # type: ignore[union-attr]
    finally:
        stop_all(*services.values())
