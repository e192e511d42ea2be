"""Bench: check-in requests per second of one instance, against a trivial FastAPI endpoint
measured in the same run, both under uvicorn (one process) and driven by wrk.

The check-in instance runs on PostgreSQL with Kafka enabled (every request commits a
check-in, its history row and its events to the outbox; the relay publishes them).
Each request checks in a different resident (a wrk Lua script walks through them).
The two servers are driven in turn, round after round (`--rounds`), and each round gives a
ratio: on a shared machine a disturbance then spoils one round, not the comparison; the
median of the rounds is the figure to quote.

    .venv/bin/python bench/checkin_throughput.py [--seconds 10] [--rounds 3] [--connections 32] [--residents 20000]
Needs wrk (Debian: apt-get install wrk; the script installs it when missing and run as root).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from _keys import use_bench_keys
from _pg import fresh_database

from common.auth import operator_token

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL = """
from fastapi import FastAPI
from pydantic import BaseModel
app = FastAPI()
class Body(BaseModel):
    resident_id: str
    temperature_c: float
@app.post("/checkins", status_code=201)
async def checkin(body: Body) -> dict:
    return {"resident_id": body.resident_id, "temperature_c": body.temperature_c}
@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}
"""
HTTP_ONLY = '''
"""The check-in app with its use case replaced by a constant answer: what the HTTP layer
(routing, auth, validation, metrics, serialisation) costs without any database."""
import datetime as dt
from checkin.main import create_app
from checkin.settings import CheckinSettings

def app():
    app = create_app(CheckinSettings(database_url="sqlite+aiosqlite:///%(db)s", kafka_enabled=False, jobs_interval_s=0))
    now = dt.datetime.now(dt.UTC)

    async def check_in(actor, resident_id, temperature_c, symptoms, channel=None, day=None, idempotency_key=None):
        return {"resident_id": resident_id, "date": now.date(), "temperature_c": temperature_c, "symptoms": [],
                "fever": False, "anomaly": False, "channel": "hotline", "submitted_by": actor.sub,
                "submitted_at": now, "revisions": 1}

    app.state.service.check_in = check_in
    return app
'''
LUA = """
counter = 0
request = function()
  counter = counter + 1
  local n = (counter * %(threads)d + (id or 0)) %% %(residents)d
  local body = string.format('{"resident_id": "R-%%010d", "temperature_c": 36.6}', n)
  return wrk.format("POST", "/checkins", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}, body)
end
setup = function(thread) thread:set("id", math.random(0, 1000000)) end
init = function(args) id = tonumber(wrk.thread:get("id")) end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk is needed: apt-get install wrk")


def serve(args: list[str], port: int, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(ROOT / ".venv/bin/uvicorn"),
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


async def wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing healthy on :{port}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, port: int, script: Path, seconds: int, connections: int) -> tuple[float, str]:
    out = subprocess.run(
        [
            wrk,
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/checkins",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"{bad.group(1)} requests failed:\n{out}")
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    return rps, p99.group(1) if p99 else "?"


async def seed(port: int, residents: int, token: str) -> None:
    """Register residents straight into the database through the import (fast)."""
    rows = ["resident_id,姓名,楼栋-单元-房号,电话,网格"]
    rows += [f",居民{i},B{i % 200:03d}-1-{i},13800000000,G{i % 20}" for i in range(residents)]
    async with httpx.AsyncClient(timeout=600) as client:
        report = (
            await client.post(
                f"http://127.0.0.1:{port}/residents/import",
                files={"file": ("r.csv", "\n".join(rows).encode())},
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
        assert report["imported"] + report["unchanged"] == residents, report


async def batch_sizes(port: int) -> str:
    """The mean batch of the group commit, from the service's own histogram."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    total = float(re.search(r"^firstline_checkin_write_batch_size_sum (\S+)", text, re.M).group(1))
    count = float(re.search(r"^firstline_checkin_write_batch_size_count (\S+)", text, re.M).group(1))
    return f"{total / count:.1f} on average over {count:,.0f} transactions"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--residents", type=int, default=20000)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure the HTTP layer alone (no database) and the service with Kafka off (no relay)",
    )
    parser.add_argument(
        "--profile",
        metavar="PY_SPY",
        help="path to py-spy: write a raw profile of the first round to /tmp/checkin-profile.txt",
    )
    args = parser.parse_args()
    wrk = ensure_wrk()
    token = operator_token(use_bench_keys(), sub="bench", role="admin")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "trivial.py").write_text(TRIVIAL)
        async with fresh_database("bench_rps") as (url, dsn):
            env = {
                **os.environ,
                "PYTHONPATH": str(tmp),
                "CHECKIN_DATABASE_URL": url,
                "CHECKIN_JOBS_INTERVAL_S": "0",
                "FIRSTLINE_ENV_FILE": "/nonexistent",
            }
            trivial = serve(["trivial:app"], 18901, env, tmp / "trivial.log")
            checkin = serve(["--factory", "checkin.main:app_from_env"], 18902, env, tmp / "checkin.log")
            try:
                await wait_healthy(18901)
                await wait_healthy(18902)
                await seed(18902, args.residents, token)
                # wrk's ids are R-0000000000.. : the stable ids of imported residents differ, so map them.
                import asyncpg

                conn = await asyncpg.connect(dsn)
                await conn.execute("UPDATE resident SET resident_id = 'R-' || lpad(room, 10, '0')")
                await conn.close()
                script = tmp / "checkin.lua"
                script.write_text(LUA % {"threads": 2, "residents": args.residents, "token": token})
                rounds = []
                for round_ in range(args.rounds):
                    rounds.append(
                        measure_round(
                            wrk, script, args, trivial.pid, checkin.pid, profile=args.profile if round_ == 0 else None
                        )
                    )
                    print(f"round {round_ + 1}: {rounds[-1]}", flush=True)
                batches = await batch_sizes(18902)
                if args.breakdown:
                    breakdown = await measure_breakdown(wrk, script, args, env, tmp)
            finally:
                for proc in (trivial, checkin):
                    proc.terminate()
                    proc.wait(timeout=30)
    median = sorted(rounds, key=lambda r: r.ratio)[len(rounds) // 2]
    print(f"check-ins per transaction (group commit): {batches}")
    print(
        f"ratio, median of {len(rounds)} rounds: {median.ratio:.2f} of the trivial endpoint (round {rounds.index(median) + 1}: "
        f"{median.checkin_rps:,.0f} against {median.trivial_rps:,.0f} req/s; {args.connections} connections, "
        f"{args.seconds} s a run, one uvicorn process each); every round: {', '.join(f'{r.ratio:.2f}' for r in rounds)}"
    )
    if args.breakdown:
        for what, (other_rps, other_p99) in breakdown.items():
            print(
                f"  {what}: {other_rps:,.0f} req/s (p99 {other_p99}), {other_rps / median.trivial_rps:.2f} of the median round's trivial endpoint"
            )


@dataclass
class Round:
    trivial_rps: float
    trivial_p99: str
    trivial_busy: float  # the trivial server's CPU, in cores, while wrk drove it
    checkin_rps: float
    checkin_p99: str
    busy: float  # the check-in server's CPU, in cores, while wrk drove it
    machine: float  # the whole machine's CPU, in cores, meanwhile

    @property
    def ratio(self) -> float:
        return self.checkin_rps / self.trivial_rps

    def __str__(self) -> str:
        return (
            f"trivial {self.trivial_rps:,.0f} req/s (p99 {self.trivial_p99}, {self.trivial_busy:.2f} of a core), POST /checkins {self.checkin_rps:,.0f} req/s "
            f"(p99 {self.checkin_p99}) = {self.ratio:.2f}; the check-in server used {self.busy:.2f} of a core, "
            f"the machine {self.machine:.2f} of {os.cpu_count()}"
        )


def measure_round(wrk: str, script: Path, args, trivial_pid: int, checkin_pid: int, profile: str | None) -> Round:
    """The trivial endpoint, then POST /checkins (PostgreSQL, outbox, relay to Kafka), each warmed up first."""
    run_wrk(wrk, 18901, script, 2, args.connections)
    cpu_before, started = cpu_seconds(trivial_pid), time.monotonic()
    trivial_rps, trivial_p99 = run_wrk(wrk, 18901, script, args.seconds, args.connections)
    trivial_busy = (cpu_seconds(trivial_pid) - cpu_before) / (time.monotonic() - started)
    run_wrk(wrk, 18902, script, 2, args.connections)
    if profile:  # py-spy (PyPI) samples the check-in server while wrk drives it
        subprocess.Popen(
            [
                profile,
                "record",
                "-r",
                "250",
                "-d",
                str(args.seconds - 1),
                "-p",
                str(checkin_pid),
                "--format",
                "raw",
                "-o",
                "/tmp/checkin-profile.txt",
            ]
        )
    cpu_before, machine_before, started = cpu_seconds(checkin_pid), machine_busy_seconds(), time.monotonic()
    rps, p99 = run_wrk(wrk, 18902, script, args.seconds, args.connections)
    elapsed = time.monotonic() - started
    busy = (cpu_seconds(checkin_pid) - cpu_before) / elapsed
    return Round(
        trivial_rps, trivial_p99, trivial_busy, rps, p99, busy, (machine_busy_seconds() - machine_before) / elapsed
    )


async def measure_breakdown(wrk: str, script: Path, args, env: dict, tmp: Path) -> dict[str, tuple[float, str]]:
    """Where the time goes: the same app without a database, and with Kafka (the relay) off."""
    (tmp / "http_only.py").write_text(HTTP_ONLY % {"db": tmp / "http_only.db"})
    variants = {
        "HTTP layer alone (use case replaced by a constant answer)": (["--factory", "http_only:app"], env),
        "POST /checkins with Kafka off (outbox rows written, no relay)": (
            ["--factory", "checkin.main:app_from_env"],
            {**env, "CHECKIN_KAFKA_ENABLED": "false"},
        ),
    }
    results = {}
    for port, (what, (server_args, server_env)) in enumerate(variants.items(), start=18903):
        proc = serve(server_args, port, server_env, tmp / f"{port}.log")
        try:
            await wait_healthy(port)
            run_wrk(wrk, port, script, 3, args.connections)
            results[what] = run_wrk(wrk, port, script, args.seconds, args.connections)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return results


if __name__ == "__main__":
    asyncio.run(main())
