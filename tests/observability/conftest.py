"""The stack as `make up` starts it (deploy/stack.sh, its own state directory and ports
18011-18015 (tests/e2e uses 18001-18005), on PostgreSQL when FIRSTLINE_TEST_PG_URL is set), and a real Prometheus
(Debian's package) scraping it with deploy/prometheus's local configuration and rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url

from common import topics
from support import bearer, kafka_client

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "portal": 18010,
    "checkin": 18011,
    "supplies": 18012,
    "dispatch": 18013,
    "timebank": 18014,
    "command": 18015,
    "messaging": 18016,
}  # e2e uses 18000-18006
CONSUMING = ("supplies", "dispatch", "timebank", "command", "checkin", "messaging")
LOCAL_PORTS = {
    "portal": 8000,
    "checkin": 8001,
    "supplies": 8002,
    "dispatch": 8003,
    "timebank": 8004,
    "command": 8005,
    "messaging": 8006,
}
PROMETHEUS_PORT = 19090
PG_URL = os.environ.get("FIRSTLINE_TEST_PG_URL")
EVENT_TOPICS = [
    topics.CHECKIN_EVENTS,
    topics.SUPPLIES_EVENTS,
    topics.DISPATCH_EVENTS,
    topics.TIMEBANK_EVENTS,
    topics.COMMAND_EVENTS,
    topics.MESSAGING_EVENTS,
]


class Stack:
    def __init__(self, var: Path, kafka: str, databases: dict[str, str]) -> None:
        self.var = var
        self.kafka = kafka
        self.env = {
            **os.environ,
            "FIRSTLINE_VAR": str(var),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            **{f"{svc.upper()}_PORT": str(port) for svc, port in PORTS.items()},
            **{f"{svc.upper()}_OUTBOX_POLL_INTERVAL_S": "0.2" for svc in PORTS},
            # Consumer groups of their own: this stack must not take partitions from other tests' stacks.
            **{f"{svc.upper()}_CONSUMER_GROUP": f"{svc}-obs-{var.name}" for svc in CONSUMING},
            **{f"{svc.upper()}_DATABASE_URL": url for svc, url in databases.items()},
        }
        self.backend = "postgres" if databases else "sqlite"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def token(self, role: str, sub: str, **scopes) -> dict[str, str]:
        return bearer(role, sub, **scopes)

    def client(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url(service), timeout=30)


def _pg_dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def pg_databases() -> AsyncIterator[dict[str, str]]:
    """One fresh PostgreSQL database per service when FIRSTLINE_TEST_PG_URL is set."""
    if not PG_URL:
        yield {}
        return
    names = {svc: f"obs_{svc}_{uuid.uuid4().hex[:8]}" for svc in PORTS}
    admin = await asyncpg.connect(_pg_dsn(PG_URL, "postgres"))
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield {
            svc: make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
            for svc, name in names.items()
        }
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def start_groups_at_end(bootstrap: str, groups: list[str]) -> None:
    """Commit the topics' current end offsets for fresh consumer groups: the stack applies
    what this test causes, not the history other tests and benchmarks left on the topics."""
    for group in groups:
        consumer = AIOKafkaConsumer(
            **kafka_client(bootstrap_servers=bootstrap), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(t, p) for t in EVENT_TOPICS for p in consumer.partitions_for_topic(t) or ()]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.commit({tp: offset for tp, offset in ends.items()})
        finally:
            await consumer.stop()


@pytest.fixture(scope="session")
async def stack(kafka, pg_databases, tmp_path_factory) -> AsyncIterator[Stack]:
    var = tmp_path_factory.mktemp("obs")
    stack = Stack(var, kafka, pg_databases)
    await start_groups_at_end(kafka, [stack.env[f"{svc.upper()}_CONSUMER_GROUP"] for svc in CONSUMING])
    try:
        result = subprocess.run(
            [str(ROOT / "deploy/stack.sh"), "up"], env=stack.env, cwd=ROOT, capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.fail(f"deploy/stack.sh up failed:\n{result.stdout}\n{result.stderr}")
        yield stack
    finally:
        subprocess.run([str(ROOT / "deploy/stack.sh"), "down"], env=stack.env, cwd=ROOT, capture_output=True)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict]:
        response = self.http.get("/api/v1/query", params={"query": expr})
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}\n{response.text}"
        return body["data"]["result"]

    def get(self, path: str) -> dict:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()["data"]


@pytest.fixture(scope="session")
def prometheus(stack, tmp_path_factory) -> Iterator[Prometheus]:
    """Debian's Prometheus with deploy/prometheus/prometheus-local.yml, its targets moved to
    the test stack's ports, scraping every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (Debian's package)")
    work = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus-local.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ROOT / "deploy/prometheus" / f) for f in config["rule_files"]]
    config.pop("alerting", None)  # this test's alerts are its own: they reach no Alertmanager
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            service = static["labels"]["service"]
            assert static["targets"] == [f"127.0.0.1:{LOCAL_PORTS[service]}"]
            static["targets"] = [f"127.0.0.1:{PORTS[service]}"]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (work / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start:\n{(work / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.2)  # noqa: poll interval of a loop with a deadline
        yield Prometheus(f"http://127.0.0.1:{PROMETHEUS_PORT}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
