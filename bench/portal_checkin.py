"""Check-ins through the portal (a household's session, cookie and JSON, as the page's
script sends them) against posting to the check-in service directly, in the same run on
the same stack. Prints both rates, their ratio (goal ≥ 0.5) and the portal's CPU time
per check-in; then the household page's first load in Debian's Chromium on a throttled
connection (400 kbit/s, 400 ms round trip): bytes transferred (budget 150 KB compressed)
and the time until it is usable (its script has run: budget 3 s).

    .venv/bin/python bench/portal_checkin.py [--households 200] [--concurrency 20]

Starts its own stack (deploy/stack.sh, ports 8230-8235, state in a temporary directory).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "libs/common"))
from common.auth import operator_token  # noqa: E402

PORTS = {"portal": 8230, "checkin": 8231, "supplies": 8232, "dispatch": 8233, "timebank": 8234, "command": 8235}


def portal_pid(var: Path) -> int:
    """The portal's process, as the stack's supervisor knows it."""
    conf = var / "supervisor/supervisord.conf"
    answer = subprocess.run(
        ["supervisorctl", "-c", str(conf), "pid", "portal"], capture_output=True, text=True, check=True
    )
    return int(answer.stdout.strip())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(calls, concurrency: int) -> float:
    queue = list(calls)
    started = time.perf_counter()

    async def worker():
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def run(var: Path, households: int, concurrency: int) -> None:
    keys = str(var / "keys")
    checkin, portal = f"http://127.0.0.1:{PORTS['checkin']}", f"http://127.0.0.1:{PORTS['portal']}"
    admin = {"Authorization": "Bearer " + operator_token(keys, role="admin", sub="bench")}
    building = "BENCH-" + uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=60) as http:
        residents = []
        for n in range(households * 2):
            body = {
                "name": f"居民{n}",
                "phone": "13800000000",
                "grid_id": "G1",
                "building_id": building,
                "unit": "1",
                "room": str(1000 + n),
            }
            residents.append((await http.post(checkin + "/residents", json=body, headers=admin)).json()["resident_id"])
        direct, through = residents[:households], residents[households:]
        sessions = {}
        for rid in through:
            link = (await http.post(portal + f"/admin/households/{rid}/link", json={}, headers=admin)).json()["url"]
            signed = await http.get(link)  # the scan: signed in, then the household's page, as a phone does
            sessions[rid] = signed.cookies["firstline_session"]
            await http.get(portal + "/home", headers={"Cookie": f"firstline_session={sessions[rid]}"})

        def post_direct(rid):
            return lambda: http.post(
                checkin + "/checkins", json={"resident_id": rid, "temperature_c": 36.5, "symptoms": []}, headers=admin
            )

        def post_portal(rid):
            return lambda: http.post(
                portal + "/api/checkins",
                json={"resident_id": rid, "temperature_c": 36.5, "symptoms": []},
                headers={"Cookie": f"firstline_session={sessions[rid]}", "Idempotency-Key": uuid.uuid4().hex},
            )

        direct_s = await timed([post_direct(r) for r in direct], concurrency)
        pid = portal_pid(var)
        cpu_before = cpu_seconds(pid)
        portal_s = await timed([post_portal(r) for r in through], concurrency)
        cpu = cpu_seconds(pid) - cpu_before
        done = (await http.get(checkin + "/households", params={"building_id": building}, headers=admin)).json()[
            "checked_in"
        ]
    print(f"direct to checkin: {households / direct_s:8.1f} check-ins/s")
    print(f"through the portal: {households / portal_s:7.1f} check-ins/s")
    print(f"ratio portal/direct: {direct_s / portal_s:.2f} (goal >= 0.5)")
    print(f"portal CPU per check-in: {1000 * cpu / households:.2f} ms")
    print(f"checked in: {done} of {2 * households}")
    async with httpx.AsyncClient(timeout=60) as http:
        rid = residents[-1]
        link = (await http.post(portal + f"/admin/households/{rid}/link", json={}, headers=admin)).json()["url"]
    transferred, usable_ms = first_load(link, portal + "/home")
    print(
        f"household page, first load at 400 kbit/s and 400 ms RTT: {transferred / 1024:.1f} KB transferred (budget 150), "
        f"usable after {usable_ms / 1000:.2f} s (budget 3)"
    )


def first_load(link: str, page: str) -> tuple[int, float]:
    """Sign in with the link, empty the cache, throttle, and load the page as a phone would."""
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="firstline-bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=360,640",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(link)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 400, "downloadThroughput": 400_000 / 8, "uploadThroughput": 400_000 / 8},
        )
        driver.get(page)
        timing = driver.execute_script("""
            const nav = performance.getEntriesByType('navigation')[0];
            const all = [nav, ...performance.getEntriesByType('resource')];
            return {bytes: all.reduce((n, e) => n + (e.transferSize || 0), 0), usable: nav.loadEventEnd - nav.startTime};""")
        return int(timing["bytes"]), float(timing["usable"])
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--households", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="firstline-bench-portal-"))
    env = {
        **os.environ,
        "FIRSTLINE_VAR": str(var),
        "PORTAL_ATTEMPTS_PER_MINUTE": "1000000",  # every sign-in comes from this address
        **{f"{s.upper()}_PORT": str(p) for s, p in PORTS.items()},
        **{
            f"{s.upper()}_CONSUMER_GROUP": f"{s}-bench-{var.name}"
            for s in ("supplies", "dispatch", "timebank", "command")
        },
    }
    subprocess.run([str(ROOT / "deploy/stack.sh"), "up"], env=env, cwd=ROOT, check=True, capture_output=True)
    try:
        asyncio.run(run(var, args.households, args.concurrency))
    finally:
        subprocess.run([str(ROOT / "deploy/stack.sh"), "down"], env=env, cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
