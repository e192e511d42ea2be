"""The local stack under supervision (deploy/stack.sh and Debian's supervisor): a service
killed with SIGKILL comes back by itself, and a stale pid file that names someone else's
process does not pass for a running stack."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from support import wait_for

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("portal", "checkin", "supplies", "dispatch", "timebank", "command", "messaging")
# Ports of their own (FIRSTLINE_TEST_SUPERVISION_PORT moves them), clear of the e2e stacks'.
BASE_PORT = int(os.environ.get("FIRSTLINE_TEST_SUPERVISION_PORT", "18021"))
PORTS = {svc: BASE_PORT + i for i, svc in enumerate(SERVICES)}


class Stack:
    def __init__(self, var: Path) -> None:
        self.var = var
        self.env = {
            **os.environ,
            "FIRSTLINE_VAR": str(var),
            **{f"{svc.upper()}_PORT": str(port) for svc, port in PORTS.items()},
            # Supervision is about processes: no broker, so no consumer group is joined.
            **{f"{svc.upper()}_KAFKA_ENABLED": "false" for svc in SERVICES},
        }

    async def run(self, command: str) -> subprocess.CompletedProcess:
        return await asyncio.to_thread(
            subprocess.run, [str(ROOT / "deploy/stack.sh"), command],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    async def pids(self) -> dict[str, int]:
        status = await self.run("status")
        return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+): running on :\d+ \(pid (\d+)\)$", status.stdout, re.M)}


async def healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
async def stack(tmp_path):
    stack = Stack(tmp_path / "stack")
    try:
        yield stack
    finally:
        await stack.run("down")


async def test_a_service_killed_with_sigkill_comes_back(stack):
    started = await stack.run("up")
    assert started.returncode == 0, started.stdout + started.stderr
    before = await stack.pids()
    assert set(before) == set(SERVICES), before

    os.kill(before["checkin"], signal.SIGKILL)

    async def back() -> bool:
        pid = (await stack.pids()).get("checkin")
        return pid is not None and pid != before["checkin"] and await healthy(PORTS["checkin"])

    await wait_for(back, timeout=60, interval=0.5, what="checkin restarted by the supervisor")
    after = await stack.pids()
    assert {svc: after[svc] for svc in SERVICES if svc != "checkin"} == {
        svc: before[svc] for svc in SERVICES if svc != "checkin"
    }  # the others were left alone
    log = (stack.var / "log" / "supervisord.log").read_text()
    assert "exited: checkin (terminated by SIGKILL; not expected)" in log

    stopped = await stack.run("down")
    assert stopped.returncode == 0, stopped.stderr
    assert await stack.pids() == {}
    assert not any(Path(f"/proc/{pid}").exists() for pid in after.values())


async def test_a_stale_pid_file_naming_another_process_is_not_a_running_stack(stack):
    run = stack.var / "run"
    run.mkdir(parents=True)
    (run / "supervisord.pid").write_text(str(os.getpid()))  # alive, but not our supervisor
    (run / "checkin.pid").write_text(str(os.getpid()))  # a pid file of the unsupervised stack

    assert await stack.pids() == {}
    started = await stack.run("up")
    assert started.returncode == 0, started.stdout + started.stderr
    assert set(await stack.pids()) == set(SERVICES)
    stopped = await stack.run("down")
    assert stopped.returncode == 0 and "stopped checkin" not in stopped.stdout  # this process was left alone


async def test_up_after_the_supervisor_itself_was_killed_takes_the_stack_back(stack):
    started = await stack.run("up")
    assert started.returncode == 0, started.stdout + started.stderr
    orphans = await stack.pids()
    supervisor = int((stack.var / "run" / "supervisord.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)  # its services keep running, holding their ports
    await wait_for(lambda: not Path(f"/proc/{supervisor}/cmdline").exists() or not Path(f"/proc/{supervisor}/cmdline").read_bytes(),
                   timeout=10, what="the supervisor gone")  # fmt: skip
    assert await stack.pids() == {}  # no supervisor, so nothing it runs

    again = await stack.run("up")
    assert again.returncode == 0, again.stdout + again.stderr
    now = await stack.pids()
    assert set(now) == set(SERVICES) and not set(now.values()) & set(orphans.values())
    assert all(await asyncio.gather(*(healthy(port) for port in PORTS.values())))
    assert not any(
        Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes() for pid in orphans.values()
    )
