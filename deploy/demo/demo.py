"""`make demo`: play a day in a synthetic community against the running stack, then show
what each kind of user sees. Safe to run again (imports and sweeps are idempotent).

Run it with the stack up (`make up`): .venv/bin/python deploy/demo/demo.py
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import community  # noqa: E402

from common.auth import issue_token  # noqa: E402
from common.clock import local_date  # noqa: E402
from common.settings import StackSettings  # noqa: E402

SETTINGS = StackSettings()
URLS = {
    "checkin": "http://127.0.0.1:8001",
    "supplies": "http://127.0.0.1:8002",
    "dispatch": "http://127.0.0.1:8003",
    "timebank": "http://127.0.0.1:8004",
    "command": "http://127.0.0.1:8005",
}
RNG = random.Random(2026)


def token(role: str, sub: str, **scopes) -> dict[str, str]:
    jwt = issue_token(SETTINGS.jwt_secret, sub=sub, role=role, now=datetime.now(UTC), **scopes)
    return {"Authorization": f"Bearer {jwt}"}


ADMIN = token("admin", "demo-admin")


def heading(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def step(text: str) -> float:
    print(f"  … {text}", end="", flush=True)
    return time.monotonic()


def done(started: float, result: str = "") -> None:
    print(f"  ({time.monotonic() - started:.1f}s) {result}", flush=True)


class Demo:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.today = local_date(datetime.now(UTC), SETTINGS.tz)
        self.yesterday = self.today - timedelta(days=1)
        self.up = {}

    async def call(self, method: str, service: str, path: str, *, headers=None, **kwargs) -> httpx.Response:
        response = await self.client.request(method, URLS[service] + path, headers=headers or ADMIN, **kwargs)
        if response.status_code >= 500:
            raise RuntimeError(f"{method} {service}{path}: {response.status_code} {response.text[:300]}")
        return response

    async def which_services_run(self) -> None:
        for name, url in URLS.items():
            try:
                self.up[name] = (await self.client.get(url + "/healthz", timeout=2)).status_code == 200
            except httpx.HTTPError:
                self.up[name] = False
        print("services up: " + ", ".join(n for n, ok in self.up.items() if ok))

    # -- the day ---------------------------------------------------------------------------

    async def seed_residents(self) -> None:
        heading("Morning: the community's register is imported")
        started = step("importing 2,000 residents (20 buildings, 4 grids) from the register spreadsheet")
        rows = community.residents(2000, registered_on=self.yesterday)
        response = await self.call(
            "POST", "checkin", "/residents/import", files={"file": ("居民花名册.xlsx", community.xlsx(rows))}, timeout=300
        )
        report = response.json()
        done(started, f"imported {report['imported']}, unchanged {report['unchanged']}, rejected {len(report['rejected'])}")
        self.residents = []
        # The ids are stable (from who and where the resident is): read them back by home.
        for grid in ("G1", "G2", "G3", "G4"):
            completion = await self.call("GET", "checkin", "/stats/completion", params={"by": "building", "grid_id": grid})
            assert completion.status_code == 200, completion.text
        self.rows = rows

    async def play_check_ins(self) -> None:
        heading("08:00–10:00: residents check in (some through their building lead)")
        from checkin.domain import draft_resident  # the same stable id the service gives

        started = step("2,000 residents: most check in, a few have a fever or a cough, some forget")
        semaphore = asyncio.Semaphore(8)
        counts = {"ok": 0, "fever": 0, "symptom": 0, "forgot": 0, "lead": 0}
        self.resident_ids = []

        async def one(row: dict) -> None:
            building, unit, room = row["address"].split("-")
            rid = draft_resident(
                name=row["name"], phone=row["phone"], community_id="C1", grid_id=row["grid"],
                building_id=building, unit=unit, room=room,
            ).resident_id
            self.resident_ids.append((rid, row))
            roll = RNG.random()
            if roll < 0.06:
                counts["forgot"] += 1
                return
            temperature, symptoms = round(RNG.uniform(36.1, 37.0), 1), []
            if roll < 0.075:
                temperature, counts["fever"] = round(RNG.uniform(37.4, 39.2), 1), counts["fever"] + 1
            elif roll < 0.085:
                symptoms, counts["symptom"] = [RNG.choice(["cough", "sore_throat", "fatigue"])], counts["symptom"] + 1
            if "老人" in row["tags"]:  # the building lead checks in for the elderly
                headers, counts["lead"] = token("building_lead", f"lead-{building}", building_ids=[building]), counts["lead"] + 1
            else:
                headers = token("resident", rid)
            async with semaphore:
                response = await self.call(
                    "POST", "checkin", "/checkins",
                    json={"resident_id": rid, "temperature_c": temperature, "symptoms": symptoms}, headers=headers,
                )
            if response.status_code == 201:
                counts["ok"] += 1

        await asyncio.gather(*(one(r) for r in self.rows))
        done(started, f"{counts['ok']} check-ins ({counts['lead']} by building leads), "
                      f"{counts['fever']} fevers, {counts['symptom']} with symptoms, {counts['forgot']} forgot")

    async def sweep(self) -> None:
        heading("10:00: the cutoff sweep finds who missed today's check-in")
        started = step("sweeping yesterday and today")
        yesterday = (await self.call("POST", "checkin", "/sweeps", json={"date": self.yesterday.isoformat()})).json()
        today = (await self.call("POST", "checkin", "/sweeps", json={"date": self.today.isoformat()})).json()
        done(started, f"{today['total_missed']} missed today (of whom {yesterday['total_missed']} also missed yesterday's register day)")

    # -- what people see -------------------------------------------------------------------

    async def show_grid_worker(self) -> None:
        heading("What grid worker 网格员 gw-G1 sees: the follow-up list for grid G1")
        worker = token("grid_worker", "gw-G1", grid_ids=["G1"])
        followups = (await self.call("GET", "checkin", "/followups", params={"grid_id": "G1"}, headers=worker)).json()
        completion = (await self.call("GET", "checkin", "/stats/completion", params={"by": "building", "grid_id": "G1"}, headers=worker)).json()
        print(f"  {followups['count']} households to call instead of {completion['expected']}:")
        for item in followups["followups"][:10]:
            tags = ",".join(item["tags"]) or "-"
            last = f"{item['last_temperature_c']}°C" if item["last_temperature_c"] else "no reading"
            print(f"   {item['address']:<12} {item['name']:<4} {item['phone']}  {'; '.join(item['reasons']):<34} tags {tags:<20} last {last}")
        if followups["count"] > 10:
            print(f"   … and {followups['count'] - 10} more")
        print("  completion by building:")
        for row in completion["rows"]:
            print(f"   {row['building_id']}: {row['checked_in']}/{row['expected']} ({row['rate']:.0%})")

    async def show_command_center(self) -> None:
        heading("What the command center 防疫指挥中心 sees")
        completion = (await self.call("GET", "checkin", "/stats/completion", params={"by": "grid"})).json()
        print(f"  check-in completion today: {completion['checked_in']}/{completion['expected']} ({completion['rate']:.1%})")
        for row in completion["rows"]:
            print(f"   {row['grid_id']}: {row['rate']:.1%}")

    async def where_next(self) -> None:
        heading("Where to look next")
        for name, url in URLS.items():
            if self.up.get(name):
                print(f"  {name:<9} {url}/docs (OpenAPI)   {url}/asyncapi   {url}/metrics")
        print("  tokens:   .venv/bin/firstline token --role grid_worker --sub gw-G1 --grid-id G1")
        print("  partners: read partner.health.v1 / partner.property.v1 / partner.police.v1 on 127.0.0.1:9092 (README)")
        print("  stop:     make down")


async def main() -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        demo = Demo(client)
        await demo.which_services_run()
        if not demo.up.get("checkin"):
            sys.exit("the check-in service is not running: start the stack with `make up`")
        await demo.seed_residents()
        await demo.play_check_ins()
        await demo.sweep()
        await demo.show_grid_worker()
        await demo.show_command_center()
        await demo.where_next()
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s; the stack is still running (make down to stop it)")


if __name__ == "__main__":
    asyncio.run(main())
