"""The stack as `make up` starts it (deploy/stack.sh), in its own state directory and on
its own ports, driven over HTTP as users drive it and read from Kafka as partners read it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import bearer, start_groups_at_the_end

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "portal": 18000,
    "checkin": 18001,
    "supplies": 18002,
    "dispatch": 18003,
    "timebank": 18004,
    "command": 18005,
    "messaging": 18006,
}


CONSUMING = {  # service: the topics its consumer group reads
    "supplies": ["dispatch.events.v1"],
    "dispatch": ["checkin.residents.v1", "supplies.events.v1", "timebank.events.v1"],
    "timebank": ["dispatch.events.v1", "checkin.residents.v1"],
    "command": [
        "checkin.events.v1",
        "checkin.residents.v1",
        "supplies.events.v1",
        "dispatch.events.v1",
        "timebank.events.v1",
        "messaging.events.v1",
    ],
    "checkin": ["messaging.events.v1", "dispatch.events.v1", "command.events.v1", "timebank.events.v1"],
    "messaging": [
        "dispatch.events.v1",
        "command.events.v1",
        "timebank.events.v1",
        "checkin.events.v1",
        "checkin.residents.v1",
    ],
}


class Stack:
    def __init__(self, var: Path, kafka: str) -> None:
        self.var = var
        self.kafka = kafka
        suffix = var.name.replace("stack", "") + os.urandom(3).hex()
        self.groups = {svc: f"{svc}-e2e-{suffix}" for svc in CONSUMING}
        self.env = {
            **os.environ,
            "FIRSTLINE_VAR": str(var),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            **{f"{svc.upper()}_PORT": str(port) for svc, port in PORTS.items()},
            **{f"{svc.upper()}_OUTBOX_POLL_INTERVAL_S": "0.2" for svc in PORTS},
            **{f"{svc.upper()}_CONSUMER_GROUP": group for svc, group in self.groups.items()},
        }

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def running(self) -> set[str]:
        return {p.stem for p in (self.var / "run").glob("*.pid")}

    def token(self, role: str, sub: str, **scopes) -> dict[str, str]:
        return bearer(role, sub, **scopes)

    def client(self, service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url(service), timeout=30)

    def script(self, *args: str) -> None:
        subprocess.run([str(ROOT / "deploy/stack.sh"), *args], env=self.env, check=True, cwd=ROOT, capture_output=True)


@pytest.fixture(scope="session")
def stack(kafka, tmp_path_factory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("stack")
    stack = Stack(var, kafka)
    asyncio.run(start_groups_at_the_end(kafka, {group: CONSUMING[svc] for svc, group in stack.groups.items()}))
    try:
        result = subprocess.run(
            [str(ROOT / "deploy/stack.sh"), "up"], env=stack.env, cwd=ROOT, capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.fail(f"deploy/stack.sh up failed:\n{result.stdout}\n{result.stderr}")
        yield stack
    finally:
        subprocess.run([str(ROOT / "deploy/stack.sh"), "down"], env=stack.env, cwd=ROOT, capture_output=True)
