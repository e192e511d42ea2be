"""The fault suite's machinery: its own Kafka (one node, and a three-node cluster), its own
PostgreSQL, services as real processes on their own ports, loads that count every answer,
and the table every experiment adds a row to.

Nothing here touches the shared broker or database: ports and state come from
FIRSTLINE_FAULTS_* (defaults: services on 8700+, one Kafka node on 19190, the cluster on
19170/19172/19174, PostgreSQL on 55470, state under var/faults/).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from common.kafka import client_kwargs
from common.settings import StackSettings
from support import bearer, wait_for

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("FIRSTLINE_FAULTS") == "full"  # `make faults`; `make test` runs the short sizes
VAR = Path(os.environ.get("FIRSTLINE_FAULTS_VAR", ROOT / "var" / "faults"))
HTTP_PORT = int(os.environ.get("FIRSTLINE_FAULTS_HTTP_PORT", "8700"))
KAFKA_PORT = int(os.environ.get("FIRSTLINE_FAULTS_KAFKA_PORT", "19190"))
CLUSTER_PORT = int(os.environ.get("FIRSTLINE_FAULTS_CLUSTER_PORT", "19170"))
PG_PORT = int(os.environ.get("FIRSTLINE_FAULTS_PG_PORT", "55470"))
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
POSTGRES_SH = ROOT / "deploy" / "postgres" / "postgres.sh"

# What each service's consumer group reads (its runtime's consumers; tests/e2e has the same map).
CONSUMING = {
    "checkin": ["messaging.events.v1"],
    "supplies": ["dispatch.events.v1"],
    "dispatch": ["checkin.residents.v1", "supplies.events.v1", "timebank.events.v1"],
    "timebank": ["dispatch.events.v1"],
    "command": ["checkin.events.v1", "checkin.residents.v1", "supplies.events.v1", "dispatch.events.v1",
                "messaging.events.v1"],
    "messaging": ["dispatch.events.v1", "command.events.v1", "timebank.events.v1", "checkin.events.v1",
                  "checkin.residents.v1"],
}  # fmt: skip
SERVICE_PORTS = {"checkin": 1, "supplies": 2, "dispatch": 3, "timebank": 4, "command": 5, "messaging": 6}


def size(short: int, full: int) -> int:
    return full if FULL else short


# -- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    experiment: str
    sent: int = 0
    accepted: int = 0
    applied: int = 0
    lost: int = 0
    duplicated: int = 0
    redelivered: int = 0  # extra copies of one event id on Kafka (at least once: deduplicated downstream)
    recovery_s: float | None = None
    note: str = ""


TABLE: list[Row] = []
HEADER = ("experiment", "sent", "accepted", "applied", "lost", "duplicated", "redelivered", "recovery s", "note")


def render(rows: Iterable[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        cells = (r.experiment, r.sent, r.accepted, r.applied, r.lost, r.duplicated, r.redelivered, recovery, r.note)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def record(row: Row) -> Row:
    """Add the row to the table (printed at the end of the run, written to var/faults/table.md)
    and fail the experiment on any loss or duplicate."""
    TABLE.append(row)
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "table.md").write_text(render(TABLE) + "\n")
    print("\n" + render([row]), flush=True)
    assert row.lost == 0 and row.duplicated == 0, f"{row.experiment}: {row.lost} lost, {row.duplicated} duplicated"
    return row


# -- Kafka ----------------------------------------------------------------------------------


class Kafka:
    """deploy/kafka/kafka.sh with this suite's ports and state: one node or a cluster."""

    def __init__(self, nodes: int, port: int, var: Path) -> None:
        self.nodes, self.port, self.var = nodes, port, var
        self.script_env = {
            **os.environ,
            "FIRSTLINE_KAFKA_NODES": str(nodes),
            "FIRSTLINE_KAFKA_PORT": str(port),
            "FIRSTLINE_KAFKA_CONTROLLER_PORT": str(port + 1),  # ours, whatever the caller's broker uses
            "FIRSTLINE_KAFKA_VAR": str(var),
            "KAFKA_BOOTSTRAP_SERVERS": "",  # ours, not an external one
            "KAFKA_START_TIMEOUT": "180",
        }
        self.bootstrap = ",".join(f"127.0.0.1:{port + 2 * i}" for i in range(nodes))

    def script(self, *args: str) -> str:
        result = subprocess.run([str(KAFKA_SH), *args], env=self.script_env, capture_output=True, text=True)
        if result.returncode not in (0, 3) or (result.returncode == 3 and args[0] != "status"):
            raise RuntimeError(f"kafka.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> None:
        self.script("start")

    def stop(self) -> None:
        self.script("stop")

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SSL_CAFILE": str(self.var / "tls" / "ca.crt"),
            "KAFKA_CREDENTIALS_DIR": str(self.var / "credentials"),
            "FIRSTLINE_KAFKA_REPLICATION": str(min(self.nodes, 3)),
        }

    def client(self, principal: str = "operator", **extra: Any) -> dict[str, Any]:
        return client_kwargs(StackSettings(**self.env()), principal, **extra)

    def pid(self, node: int) -> int | None:
        out = subprocess.run([str(KAFKA_SH), "pid", str(node)], env=self.script_env, capture_output=True, text=True)
        return int(out.stdout) if out.stdout.strip().isdigit() else None

    def kill9(self, node: int = 1) -> None:
        pid = self.pid(node)
        assert pid, f"Kafka node {node} is not running"
        kill9(pid)

    async def leader(self, topic: str, partition: int = 0) -> int:
        admin = AIOKafkaAdminClient(**self.client())
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            return next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
        finally:
            await admin.close()

    async def ends(self, topic: str) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(**self.client(), enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            return await consumer.end_offsets(tps)
        finally:
            await consumer.stop()

    async def read(self, topic: str, start: dict[TopicPartition, int]) -> list[Any]:
        """Every record on `topic` from `start` to the current end."""
        consumer = AIOKafkaConsumer(**self.client(), enable_auto_commit=False, max_partition_fetch_bytes=2_000_000)
        await consumer.start()
        out: list[Any] = []
        try:
            consumer.assign(list(start))
            for tp, offset in start.items():
                consumer.seek(tp, offset)
            ends = await consumer.end_offsets(list(start))
            while True:
                behind = [tp for tp in start if await consumer.position(tp) < ends[tp]]
                if not behind:
                    break
                for records in (await consumer.getmany(*behind, timeout_ms=500, max_records=5000)).values():
                    out.extend(records)
        finally:
            await consumer.stop()
        return out

    async def groups_at_the_end(self, groups: dict[str, list[str]]) -> None:
        """New consumer groups start at the topics' ends: a service under test applies what
        the experiment sends, not what earlier experiments left."""
        for group, topics in groups.items():
            consumer = AIOKafkaConsumer(**self.client(), group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                await consumer._client.force_metadata_update()
                tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in ends.items()})
            finally:
                await consumer.stop()

    async def committed(self, group: str) -> int:
        admin = AIOKafkaAdminClient(**self.client())
        await admin.start()
        try:
            return sum(o.offset for o in (await admin.list_consumer_group_offsets(group)).values() if o.offset > 0)
        finally:
            await admin.close()


# -- PostgreSQL -----------------------------------------------------------------------------


class Postgres:
    """deploy/postgres/postgres.sh on this suite's port with its own cluster (FIRSTLINE_PG_VAR):
    the one the suite stops and starts."""

    def __init__(self, port: int, var: Path) -> None:
        self.env = {**os.environ, "FIRSTLINE_PG_PORT": str(port), "FIRSTLINE_PG_VAR": str(var)}

    def script(self, *args: str) -> str:
        result = subprocess.run([str(POSTGRES_SH), *args], env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"postgres.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout.strip()

    def start(self) -> None:
        self.script("start")

    def stop(self) -> None:
        self.script("stop")

    def database(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.script("createdb", name)
        return self.script("url", name)


# -- services -------------------------------------------------------------------------------


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # our own child: reap it, or it stays a zombie that answers kill -0
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} survived SIGKILL")


class Service:
    """One service as uvicorn runs it under the supervisor, on the suite's port block."""

    def __init__(self, name: str, kafka: Kafka, database_url: str, *, index: int = 0, **env: str) -> None:
        self.name, self.kafka = name, kafka
        self.port = HTTP_PORT + SERVICE_PORTS.get(name, 9) * 10 + index
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log = VAR / "logs" / f"{name}-{self.port}.log"
        p = name.upper()
        self.env = {
            **os.environ,
            **kafka.env(),
            "FIRSTLINE_ENV_FILE": str(VAR / "none.env"),
            f"{p}_DATABASE_URL": database_url,
            f"{p}_OUTBOX_POLL_INTERVAL_S": "0.2",
            f"{p}_JOBS_INTERVAL_S": "0",
            f"{p}_LOG_LEVEL": "WARNING",
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"===== start {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", f"{self.name}.main:app_from_env", "--host",
                 "127.0.0.1", "--port", str(self.port), "--no-access-log"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill9(self) -> None:
        assert self.process is not None
        kill9(self.process.pid)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill9(self.process.pid)

    async def ready(self, timeout: float = 120) -> None:
        """Answering (/readyz) and connected to Kafka (/pipelinez says so)."""

        async def connected() -> bool:
            try:
                async with httpx.AsyncClient(timeout=3) as client:
                    ready = await client.get(f"{self.url}/readyz")
                    pipeline = await client.get(f"{self.url}/pipelinez")
                return ready.status_code == 200 and pipeline.json()["kafka"]
            except httpx.HTTPError:
                assert self.process is None or self.process.poll() is None, f"{self.name} exited (see {self.log})"
                return False

        await wait_for(connected, timeout=timeout, interval=0.2, what=f"{self.name} on {self.url} (log {self.log})")

    async def query(self, sql: str, *params: Any) -> list[tuple]:
        """Read the service's own SQLite or PostgreSQL database directly: what is really stored."""
        if self.database_url.startswith("sqlite"):
            with sqlite3.connect(self.database_url.split("///", 1)[1]) as conn:
                return conn.execute(sql.replace("$1", "?"), params).fetchall()
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(self.database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *params)]
        finally:
            await conn.close()


def sqlite_url(name: str) -> str:
    path = VAR / "db" / f"{name}-{uuid.uuid4().hex[:8]}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def group(service: str) -> str:
    """A consumer group of its own (the service's principal may use groups prefixed by its name)."""
    return f"{service}-faults-{uuid.uuid4().hex[:8]}"


# -- loads ----------------------------------------------------------------------------------


def admin() -> dict[str, str]:
    return bearer("admin", "faults-admin")


async def register(checkin: Service, count: int, registered_on: str) -> None:
    """`count` residents through the import endpoint (one spreadsheet, as a community loads its register)."""
    lines = ["name,building,unit,room,phone,grid,registered_on"]
    lines += [f"居民{i},F{i // 400:03d},{i % 4 + 1},{i % 100 + 101},13800000000,G{i % 3 + 1},{registered_on}"
              for i in range(count)]  # fmt: skip
    async with httpx.AsyncClient(base_url=checkin.url, timeout=300) as client:
        response = await client.post(
            "/residents/import", files={"file": ("register.csv", "\n".join(lines).encode())}, headers=admin()
        )
    assert response.status_code == 200 and response.json()["imported"] == count, response.text


async def residents(checkin: Service) -> list[str]:
    return [r[0] for r in await checkin.query("SELECT resident_id FROM resident ORDER BY resident_id")]


@dataclass
class Burst:
    """Concurrent check-ins, one per resident, each retried with its Idempotency-Key until
    answered 2xx (as the page does): `answers` counts every answer by status."""

    accepted: set[str] = field(default_factory=set)
    answers: Counter = field(default_factory=Counter)
    bad_bodies: list[str] = field(default_factory=list)  # a 5xx that was not a clear JSON 503
    first_failure: float | None = None
    recovered_at: float | None = None


async def burst(
    url: str,
    ids: list[str],
    *,
    concurrency: int = 16,
    fault_after: int | None = None,
    fault: Callable[[], Awaitable[None]] | None = None,
    retry: bool = True,
    deadline_s: float = 240,
) -> Burst:
    out = Burst()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for rid in ids:
        queue.put_nowait(rid)
    done = 0
    fault_task: asyncio.Task | None = None
    deadline = time.monotonic() + deadline_s

    async def one(client: httpx.AsyncClient, rid: str) -> None:
        nonlocal done, fault_task
        key = f"faults-{rid}"
        while True:
            try:
                response = await client.post(
                    "/checkins",
                    json={"resident_id": rid, "temperature_c": 38.6, "symptoms": ["cough"]},
                    headers={**admin(), "Idempotency-Key": key},
                )
                out.answers[response.status_code] += 1
                if response.status_code < 300:
                    out.accepted.add(rid)
                    if out.first_failure is not None and out.recovered_at is None:
                        out.recovered_at = time.monotonic()
                    break
                if response.status_code >= 500 and not _clear_503(response):
                    out.bad_bodies.append(f"{response.status_code} {response.headers} {response.text[:300]}")
            except httpx.HTTPError as exc:
                out.answers[type(exc).__name__] += 1
            if out.first_failure is None:
                out.first_failure = time.monotonic()
            if not retry or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        done += 1
        if fault and fault_after is not None and done == fault_after:
            fault_task = asyncio.create_task(fault())

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=15) as client:
            while not queue.empty():
                await one(client, queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if fault_task is not None:
        await fault_task
    return out


def _clear_503(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return response.status_code == 503 and bool(body.get("detail")) and "Retry-After" in response.headers


def envelopes(records: list[Any], type_: str) -> tuple[dict[str, dict], int]:
    """The events of `type_` by id, and how many extra copies of an id there were."""
    by_id: dict[str, dict] = {}
    copies = 0
    for r in records:
        try:
            event = json.loads(r.value)
        except (TypeError, ValueError):
            continue
        if event.get("type") != type_:
            continue
        if event["id"] in by_id:
            copies += 1
        by_id[event["id"]] = event
    return by_id, copies


def per_subject(events: dict[str, dict], subjects: set[str]) -> Counter:
    return Counter(e["data"]["resident_id"] for e in events.values() if e["data"]["resident_id"] in subjects)
