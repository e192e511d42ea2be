"""`make demo`: play a day in a synthetic community against the running stack, then show
what each kind of user sees. Safe to run again (imports and sweeps are idempotent).

Run it with the stack up (`make up`): .venv/bin/python deploy/demo/demo.py
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import community

from common.auth import operator_token
from common.clock import local_date
from common.settings import StackSettings

SETTINGS = StackSettings()
PORTS = {
    "portal": 8000,
    "checkin": 8001,
    "supplies": 8002,
    "dispatch": 8003,
    "timebank": 8004,
    "command": 8005,
    "messaging": 8006,
}
URLS = {
    name: f"http://127.0.0.1:{os.environ.get(f'{name.upper()}_PORT', port)}" for name, port in PORTS.items()
}  # as deploy/stack.sh
RNG = random.Random(2026)


def token(role: str, sub: str, **scopes) -> dict[str, str]:
    jwt = operator_token(SETTINGS.keys_dir, sub=sub, role=role, **scopes)  # the portal's key file, as `firstline token`
    return {"Authorization": f"Bearer {jwt}"}


def admin() -> dict[str, str]:
    return token("admin", "demo-admin")  # signed per call: tokens live 15 minutes, a demo may run longer


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
        response = await self.client.request(method, URLS[service] + path, headers=headers or admin(), **kwargs)
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
            "POST",
            "checkin",
            "/residents/import",
            files={"file": ("居民花名册.xlsx", community.xlsx(rows))},
            timeout=300,
        )
        report = response.json()
        done(
            started,
            f"imported {report['imported']}, unchanged {report['unchanged']}, rejected {len(report['rejected'])}",
        )
        self.residents = []
        # The ids are stable (from who and where the resident is): read them back by home.
        for grid in ("G1", "G2", "G3", "G4"):
            completion = await self.call(
                "GET", "checkin", "/stats/completion", params={"by": "building", "grid_id": grid}
            )
            assert completion.status_code == 200, completion.text
        self.rows = rows

    async def play_check_ins(self) -> None:
        heading("08:00–10:00: residents check in (some through their building lead)")
        started = step("2,000 residents: most check in, a few have a fever or a cough, some forget")
        # Resident ids are random: learn them from the register, building by building.
        ids: dict[tuple[str, str, str, str], str] = {}
        for building in sorted({row["address"].split("-")[0] for row in self.rows}):
            answer = await self.call("GET", "checkin", "/households", params={"building_id": building})
            for household in answer.json()["households"]:
                for member in household["members"]:
                    ids[(building, household["unit"], household["room"], member["name"])] = member["resident_id"]
        semaphore = asyncio.Semaphore(8)
        counts = {"ok": 0, "fever": 0, "symptom": 0, "forgot": 0, "lead": 0}
        self.resident_ids = []

        async def one(row: dict) -> None:
            building, unit, room = row["address"].split("-")
            rid = ids[(building, unit, room, row["name"])]
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
                headers, counts["lead"] = (
                    token("building_lead", f"lead-{building}", building_ids=[building]),
                    counts["lead"] + 1,
                )
            else:
                headers = token("resident", rid)
            async with semaphore:
                response = await self.call(
                    "POST",
                    "checkin",
                    "/checkins",
                    json={"resident_id": rid, "temperature_c": temperature, "symptoms": symptoms},
                    headers=headers,
                )
            if response.status_code == 201:
                counts["ok"] += 1

        await asyncio.gather(*(one(r) for r in self.rows))
        done(
            started,
            f"{counts['ok']} check-ins ({counts['lead']} by building leads), "
            f"{counts['fever']} fevers, {counts['symptom']} with symptoms, {counts['forgot']} forgot",
        )

    async def remind(self) -> None:
        heading(
            "09:00: who has not checked in yet is reminded (SMS; a voice call for the elderly and those living alone)"
        )
        started = step(
            "messaging's record of today's reminders (its job sends them between MESSAGING_REMINDER_TIME and the cutoff)"
        )
        sent = (
            await self.call("GET", "messaging", "/messages", params={"kind": "checkin_reminder", "limit": 1000})
        ).json()
        today = [m for m in sent if local_date(datetime.fromisoformat(m["created_at"]), SETTINGS.tz) == self.today]
        by_channel = {
            channel: sum(m["channel"] == channel for m in today) for channel in sorted({m["channel"] for m in today})
        }
        done(
            started,
            f"{len(today)} reminders today {by_channel or ''} (outside the window: none yet; "
            f"without a gateway they go to var/log/messaging.log and {URLS['messaging']}/outbox)",
        )

    async def sweep(self) -> None:
        heading("10:00: the cutoff sweep finds who missed today's check-in")
        started = step("sweeping today (the job does this at CHECKIN_CUTOFF_TIME; by hand here)")
        today = (await self.call("POST", "checkin", "/sweeps", json={"date": self.today.isoformat()})).json()
        self.missed_today = today["total_missed"]
        done(started, f"{today['total_missed']} residents missed today's check-in: one CheckInMissed each on Kafka")

    async def open_command_center(self) -> None:
        heading("06:30: the command center 防疫指挥中心 opens the day; a drill (演练) tests escalation")
        admin = token("admin", "admin-1")
        started = step("a grid worker for G4 joins the directory; a drill rule whose deadline is one minute")
        await self.call(
            "PUT",
            "command",
            "/directory/people/gw-G4",
            headers=admin,
            json={
                "name": "网格员 Ma (G4)",
                "role": "grid_worker",
                "department": "grid",
                "phone": "13900000014",
                "supervisor_id": "grid-lead",
                "grid_ids": ["G4"],
            },
        )
        rule = await self.call(
            "PUT",
            "command",
            "/rules/category:drill",
            headers=admin,
            json={
                "kind": "drill",
                "department": "command",
                "owner_by": "department",
                "priority": "normal",
                "title": "演练 Drill: {kind}",
                "action": "Acknowledge within the deadline, or it escalates.",
            },
        )
        sla = await self.call(
            "PUT", "command", "/sla/drill/normal", headers=admin, json={"respond_minutes": 1, "resolve_minutes": 2}
        )
        assert rule.status_code == 200 and sla.status_code == 200, (rule.text, sla.text)
        await asyncio.sleep(1)  # configuration is re-read within COMMAND_CONFIG_CACHE_S
        drill = await self.call(
            "POST",
            "command",
            "/tickets",
            headers=token("command", "cmd-duty"),
            json={"category": "drill", "description": "物资站夜间应急演练 night-time supplies drill"},
        )
        if drill.status_code != 201:  # the new rule not read yet: try once more
            await asyncio.sleep(5)
            drill = await self.call(
                "POST",
                "command",
                "/tickets",
                headers=token("command", "cmd-duty"),
                json={"category": "drill", "description": "物资站夜间应急演练 night-time supplies drill"},
            )
        assert drill.status_code == 201, drill.text
        self.drill = drill.json()
        done(
            started,
            f"drill ticket {self.drill['ticket_id']} owned by {self.drill['owner']}, respond by "
            f"{datetime.fromisoformat(self.drill['respond_by']).astimezone(SETTINGS.tz):%H:%M:%S}",
        )

    # -- supplies, volunteers, requests --------------------------------------------------

    async def stock_the_depots(self) -> None:
        heading("07:00: the supplies officer stocks three depots")
        officer = token("supplies_officer", "officer-1")
        started = step("5 items, 3 depots, the morning's government allocation and donations")
        catalog = [
            ("N95", "N95口罩 N95 masks", "box", "protective", 40, False),
            ("DISINF", "84消毒液 disinfectant", "bottle", "disinfection", 20, False),
            ("AG-KIT", "抗原检测试剂 antigen kits", "kit", "testing", 60, True),
            ("FOOD", "保供食品包 food package", "package", "food", 15, False),
            ("METFORMIN", "二甲双胍 metformin", "box", "medicine", 10, True),
        ]
        self.items = {}
        for sku, name, unit, category, threshold, expiry in catalog:
            response = await self.call(
                "POST",
                "supplies",
                "/items",
                headers=officer,
                json={
                    "item_id": f"I-{sku}",
                    "sku": sku,
                    "name": name,
                    "unit": unit,
                    "category": category,
                    "threshold": threshold,
                    "tracks_expiry": expiry,
                    "lead_time_days": 2,
                },
            )
            assert response.status_code in (201, 409), response.text
            self.items[sku] = f"I-{sku}"
        depots = [
            ("D-STATION", "社区物资站 community station", community.CENTER, "community_station", None),
            ("D-B05", "5号楼物资点 building 5 point", (31.2315, 121.4737), "building_point", "B05"),
            ("D-B13", "13号楼物资点 building 13 point", (31.2326, 121.4763), "building_point", "B13"),
        ]
        for depot_id, name, (lat, lon), kind, building in depots:
            response = await self.call(
                "POST",
                "supplies",
                "/depots",
                headers=officer,
                json={
                    "depot_id": depot_id,
                    "name": name,
                    "lat": lat,
                    "lon": lon,
                    "kind": kind,
                    "building_id": building,
                },
            )
            assert response.status_code in (201, 409), response.text
        fresh = (await self.call("GET", "supplies", "/stock", headers=officer, params={"depot_id": "D-STATION"})).json()
        if not fresh["count"]:  # the first run of the day receives; a second run finds the stock there
            expires = (self.today + timedelta(days=120)).isoformat()
            receipts = [
                ("D-STATION", "N95", 400),
                ("D-STATION", "DISINF", 120),
                ("D-STATION", "AG-KIT", 600),
                ("D-STATION", "FOOD", 200),
                ("D-STATION", "METFORMIN", 80),
                ("D-B05", "N95", 60),
                ("D-B05", "FOOD", 20),
                ("D-B13", "N95", 150),
                ("D-B13", "FOOD", 60),
            ]
            for depot_id, sku, quantity in receipts:
                body = {
                    "depot_id": depot_id,
                    "item_id": self.items[sku],
                    "quantity": quantity,
                    "source": "government_allocation",
                }
                if sku in ("AG-KIT", "METFORMIN"):
                    body |= {"batch": f"{sku}-{self.today:%Y%m}", "expires_on": expires}
                response = await self.call("POST", "supplies", "/stock/receipts", headers=officer, json=body)
                assert response.status_code == 201, response.text
        done(started)

    async def enlist_volunteers(self) -> None:
        heading("07:30: 30 volunteers in their groups; each has a time-bank account")
        dispatcher = token("dispatcher", "dispatcher-1")
        staff = token("command", "command-1")
        started = step("errands 跑腿组 ×20, tech help 技术组 ×4, publicity 宣传组 ×3, counsellors ×3")
        groups = ["errands"] * 20 + ["tech"] * 4 + ["publicity"] * 3 + ["counsellor"] * 3
        names = [
            "王磊",
            "李娜",
            "张伟",
            "刘洋",
            "陈静",
            "杨帆",
            "黄丽",
            "赵强",
            "吴敏",
            "周杰",
            "徐婷",
            "孙浩",
            "马超",
            "朱琳",
            "胡军",
            "郭欣",
            "何平",
            "高峰",
            "林悦",
            "罗斌",
            "郑凯",
            "梁雪",
            "谢宇",
            "宋佳",
            "唐晨",
            "许诺",
            "韩梅",
            "冯涛",
            "邓霞",
            "曹阳",
        ]
        self.volunteers = []
        for n, (group, name) in enumerate(zip(groups, names, strict=True)):
            volunteer_id = f"V{n + 1:02d}"
            b = community.buildings()[n % 20]
            response = await self.call(
                "POST",
                "dispatch",
                "/volunteers",
                headers=dispatcher,
                json={
                    "volunteer_id": volunteer_id,
                    "name": name,
                    "group": group,
                    "lat": b.lat,
                    "lon": b.lon,
                    "capacity": 6,
                    "phone": f"1390000{n:04d}",
                },
            )
            assert response.status_code in (201, 409), response.text
            if self.up.get("timebank"):
                response = await self.call(
                    "POST",
                    "timebank",
                    "/members",
                    headers=staff,
                    json={"member_id": volunteer_id, "name": name, "kind": "volunteer"},
                )
                assert response.status_code in (201, 409), response.text
            self.volunteers.append((volunteer_id, name, group))
        done(started)

    async def raise_requests(self) -> None:
        heading("11:00: residents ask for help (一站式服务): groceries, medicine, tech help, someone to talk to")
        started = step("60 requests, some raised by building leads for elderly residents")
        kinds = (
            (["groceries"] * 30)
            + (["medicine"] * 14)
            + (["tech_help"] * 8)
            + (["psychological"] * 4)
            + (["medical_visit"] * 4)
        )
        self.requests = []
        for n, category in enumerate(kinds):
            rid, row = self.resident_ids[(n * 37) % len(self.resident_ids)]
            items = []
            if category == "groceries":
                items = [{"item_id": self.items["FOOD"], "quantity": 1}]
            elif category == "medicine":
                items = [{"item_id": self.items["METFORMIN"], "quantity": 1}]
            building = row["address"].split("-")[0]
            headers = (
                token("building_lead", f"lead-{building}", building_ids=[building])
                if "老人" in row["tags"]
                else token("resident", rid)
            )
            body = {
                "resident_id": rid,
                "category": category,
                "items": items,
                "details": {
                    "groceries": "米、油、蔬菜",
                    "medicine": "常用药续方",
                    "tech_help": "手机健康码打不开",
                    "psychological": "独居，最近睡不好",
                    "medical_visit": "血压偏高，需要上门",
                }[category],
            }
            deadline = time.monotonic() + 120
            # Dispatch learns residents from check-in's events on Kafka: the newest may still be on their way.
            while (
                response := await self.call("POST", "dispatch", "/requests", headers=headers, json=body)
            ).status_code == 404:
                if time.monotonic() > deadline:
                    sys.exit(f"dispatch has not learned {rid} from Kafka in 2 minutes: see var/log/dispatch.log")
                await asyncio.sleep(0.5)
            assert response.status_code == 201, response.text
            self.requests.append(response.json()["request_id"])
        done(started, f"{len(self.requests)} requests raised")

    async def deliver(self) -> None:
        heading("14:00: dispatch plans delivery runs; volunteers deliver; the time bank credits their hours")
        dispatcher = token("dispatcher", "dispatcher-1")
        started = step("waiting for supplies to reserve the items, then planning runs with OR-Tools")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = (
                await self.call("GET", "dispatch", "/requests", headers=dispatcher, params={"status": "awaiting_stock"})
            ).json()
            if not pending:
                break
            await asyncio.sleep(0.5)
        plan = (await self.call("POST", "dispatch", "/runs/plan", headers=dispatcher, json={})).json()
        self.runs = plan.get("runs", [])
        done(
            started,
            f"{len(self.runs)} runs for {sum(len(r['stops']) for r in self.runs)} stops, "
            f"{plan.get('distance_m', 0) / 1000:.1f} km in all",
        )
        started = step("volunteers fulfil their first stops")
        fulfilled = 0
        for run in self.runs:
            volunteer = run["volunteer_id"]
            for stop in run["stops"][: max(1, len(run["stops"]) * 2 // 3)]:
                response = await self.call(
                    "POST",
                    "dispatch",
                    f"/requests/{stop['request_id']}/fulfil",
                    headers=token("volunteer", volunteer),
                    json={"volunteer_id": volunteer, "service_minutes": RNG.choice([20, 30, 45, 60])},
                )
                fulfilled += response.status_code == 200
        done(started, f"{fulfilled} requests fulfilled")

    async def afternoon_stock(self) -> None:
        heading("16:00: masks go out at building 5; the stock alarm and a suggested transfer")
        officer = token("supplies_officer", "officer-1")
        started = step("issuing N95 masks to grid workers and sampling sites")
        for depot_id, quantity in (("D-B05", 25), ("D-B05", 20), ("D-STATION", 60)):
            await self.call(
                "POST",
                "supplies",
                "/stock/issues",
                headers=officer,
                json={
                    "depot_id": depot_id,
                    "item_id": self.items["N95"],
                    "quantity": quantity,
                    "reason": "网格员和采样点",
                },
            )
        rebalance = (await self.call("POST", "supplies", "/stock/rebalance", headers=officer)).json()
        done(started, f"{rebalance['new']} new transfer suggestion(s)")

    # -- what people see -------------------------------------------------------------------

    async def show_grid_worker(self) -> None:
        heading("What grid worker 网格员 gw-G1 sees: the follow-up list for grid G1")
        worker = token("grid_worker", "gw-G1", grid_ids=["G1"])
        followups = (await self.call("GET", "checkin", "/followups", params={"grid_id": "G1"}, headers=worker)).json()
        completion = (
            await self.call(
                "GET", "checkin", "/stats/completion", params={"by": "building", "grid_id": "G1"}, headers=worker
            )
        ).json()
        print(f"  {followups['count']} households to call instead of {completion['expected']}:")
        for item in followups["followups"][:10]:
            tags = ",".join(item["tags"]) or "-"
            last = f"{item['last_temperature_c']}°C" if item["last_temperature_c"] else "no reading"
            print(
                f"   {item['address']:<12} {item['name']:<4} {item['phone']}  {'; '.join(item['reasons']):<34} tags {tags:<20} last {last}"
            )
        if followups["count"] > 10:
            print(f"   … and {followups['count'] - 10} more")
        print("  completion by building:")
        for row in completion["rows"]:
            print(f"   {row['building_id']}: {row['checked_in']}/{row['expected']} ({row['rate']:.0%})")

    async def show_volunteer(self) -> None:
        if not getattr(self, "runs", None):
            return
        run = max(self.runs, key=lambda r: len(r["stops"]))
        heading(f"What volunteer {run['volunteer_id']} sees: the route sheet (on a phone, or printed)")
        sheet = await self.call(
            "GET",
            "dispatch",
            f"/runs/{run['run_id']}",
            params={"format": "text"},
            headers=token("volunteer", run["volunteer_id"]),
        )
        print("  " + sheet.text.strip().replace("\n", "\n  "))

    async def show_supplies_officer(self) -> None:
        heading("What the supplies officer sees: stock alerts (most urgent first) and suggested transfers")
        officer = token("supplies_officer", "officer-1")
        alerts = (await self.call("GET", "supplies", "/stock/alerts", headers=officer)).json()
        for a in alerts["alerts"][:8]:
            cover = (
                f"{a['days_of_cover']:.1f} days of cover" if a["days_of_cover"] is not None else "no consumption yet"
            )
            print(
                f"   {a['state']:<5} {a['name']:<28} at {a['depot_id']:<10} on hand {a['on_hand']:>6g} "
                f"(line {a['threshold'] or a['minimum']:g}; {cover})"
            )
        if not alerts["count"]:
            print("   nothing below its line")
        suggestions = (
            await self.call(
                "GET", "supplies", "/stock/transfers/suggestions", params={"status": "open"}, headers=officer
            )
        ).json()
        for t in suggestions[:5]:
            print(
                f"   suggested: move {t['quantity']:g} of {t['item_id']} from {t['from_depot_id']} to {t['to_depot_id']} ({t['reason']})"
            )

    async def show_hot_demands(self) -> None:
        heading("Hot demands (热点需求): requests by category and grid")
        demand = (await self.call("GET", "dispatch", "/stats/demand", headers=token("command", "command-1"))).json()
        totals = demand.get("totals", {})
        print("   " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])))
        for grid, counts in sorted(demand.get("by_grid", {}).items()):
            print(f"   {grid}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for surge in demand.get("surges", [])[:3]:
            print(f"   SURGE {surge.get('category')}: {surge.get('suggested_action')}")

    async def show_leaderboard(self) -> None:
        heading("The time bank's monthly leaderboard (公开表彰)")
        board = (await self.call("GET", "timebank", "/leaderboard", headers=token("volunteer", "V01"))).json()
        for entry in board["entries"][:10]:
            print(
                f"   {entry['rank']:>2}. {entry['name']:<4} {entry['member_id']}  {entry['hours']:>5.2f} h  {entry['points']:>4} points"
            )
        if not board["entries"]:
            print("   nobody has been credited yet this month")

    async def show_command_center(self) -> None:
        heading("What the command center 防疫指挥中心 sees")
        completion = (await self.call("GET", "checkin", "/stats/completion", params={"by": "grid"})).json()
        print(
            f"  check-in completion today: {completion['checked_in']}/{completion['expected']} ({completion['rate']:.1%}): "
            + ", ".join(f"{r['grid_id']} {r['rate']:.1%}" for r in completion["rows"])
        )
        if not self.up.get("command"):
            return
        duty = token("command", "cmd-duty")
        started = step("waiting for the events to become tickets")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            followups = (
                await self.call(
                    "GET",
                    "command",
                    "/tickets",
                    params={"kind": "followup", "stage": "open", "limit": 1000},
                    headers=duty,
                )
            ).json()
            if len(followups) >= self.missed_today:
                break
            await asyncio.sleep(1)
        done(started, f"{len(followups)} follow-up tickets")
        mine = (
            await self.call(
                "GET",
                "command",
                "/tickets",
                params={"owner": "me", "kind": "followup", "limit": 1000},
                headers=token("grid_worker", "gw-G1", grid_ids=["G1"]),
            )
        ).json()
        print(f"  grid worker gw-G1 owns {len(mine)} follow-up tickets, e.g.:")
        for t in mine[:3]:
            print(
                f"   {t['ticket_id']}  {t['priority']:<6} {t['title'][:60]:<60} respond by "
                f"{datetime.fromisoformat(t['respond_by']).astimezone(SETTINGS.tz):%H:%M}"
            )
        worker = token("grid_worker", "gw-G1", grid_ids=["G1"])
        outcomes = []
        for ticket, satisfaction in zip(mine[:3], (5, 4, 2), strict=False):  # the loop, to the resident's word
            path = f"/tickets/{ticket['ticket_id']}"
            await self.call("POST", "command", f"{path}/acknowledge", headers=worker)
            await self.call(
                "POST",
                "command",
                f"{path}/resolve",
                headers=worker,
                json={"resolution": "电话联系上了，身体无恙，已提醒每日打卡 reached by phone, well, reminded"},
            )
            closed = await self.call(
                "POST",
                "command",
                f"{path}/feedback",
                headers=worker,
                json={"satisfaction": satisfaction, "comment": "recorded by phone on the resident's behalf"},
            )
            outcomes.append(
                f"{ticket['ticket_id']} -> {closed.json().get('stage', closed.status_code)} (satisfaction {satisfaction})"
            )
        print("  gw-G1 works three of them: acknowledge, resolve, the resident's feedback:")
        for outcome in outcomes:
            print(f"   {outcome}")
        health = (
            await self.call(
                "GET",
                "command",
                "/tickets",
                params={"kind": "fever"},
                headers=token("partner", "health-duty", department="health"),
            )
        ).json()
        print(f"  the health department (卫健) sees {len(health)} fever tickets (and reads them on partner.health.v1)")

        heading("An overdue ticket escalates to its owner's supervisor")
        drill_due = datetime.fromisoformat(self.drill["respond_by"])
        wait = (drill_due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            started = step(f"the drill ticket is not acknowledged: waiting {wait:.0f}s for its deadline")
            await asyncio.sleep(wait + 1)
            done(started)
        await self.call("POST", "command", "/escalations/run", headers=duty)  # the job also runs every 30 s
        drill = (await self.call("GET", "command", f"/tickets/{self.drill['ticket_id']}", headers=duty)).json()
        print(
            f"  {drill['ticket_id']}: owner {self.drill['owner']} -> {drill['owner']}, priority {drill['priority']}, "
            f"escalation level {drill.get('escalation_level', '?')}"
        )

        heading("The daily meeting 每日例会 (GET /agenda?format=markdown, ready for the group chat)")
        agenda = await self.call("GET", "command", "/agenda", params={"format": "markdown"}, headers=duty)
        for section in agenda.text.strip().split("\n## "):  # each section, its first items
            lines = [line for line in section.splitlines() if line.strip()]
            print("  " + ("## " if not section.startswith("#") else "") + lines[0])
            for line in lines[1:9]:
                print("    " + line)
            if len(lines) > 9:
                print(f"    … {len(lines) - 9} more")
        heatmap = (await self.call("GET", "command", "/heatmap", headers=duty)).json()
        cells = sorted(heatmap.get("features", []), key=lambda f: -f["properties"].get("count", 0))
        print(
            f"\n  heat map: {len(cells)} H3 cells with problems; busiest: "
            + ", ".join(
                f"{c['properties'].get('h3', c['properties'].get('cell', '?'))} ({c['properties'].get('count')})"
                for c in cells[:3]
            )
        )

    async def show_messages(self) -> None:
        """A follow-up resolved, the resident invited to answer 1–5 by SMS, their "5" closing it."""
        heading("Messages: a resident's day, and a feedback reply that closes the ticket")
        import json

        from messaging.gateway import sign
        from messaging.settings import MessagingSettings

        worker = token("grid_worker", "gw-G1", grid_ids=["G1"])
        open_ones = (await self.call("GET", "command", "/tickets", params={"owner": "me", "kind": "followup", "stage": "discovered", "limit": 1},
                                     headers=worker)).json()  # fmt: skip
        if not open_ones:
            print("  no open follow-up ticket to resolve")
            return
        ticket = open_ones[0]["ticket_id"]
        detail = (await self.call("GET", "command", f"/tickets/{ticket}", headers=worker)).json()
        resident = detail.get("resident_id")
        await self.call("POST", "command", f"/tickets/{ticket}/acknowledge", headers=worker)
        await self.call(
            "POST",
            "command",
            f"/tickets/{ticket}/resolve",
            headers=worker,
            json={"resolution": "电话回访，已补打卡 called back, checked in"},
        )
        started = step(f"{ticket} resolved; waiting for messaging to invite {resident}'s feedback")
        invitation = None
        for _ in range(60):
            found = (
                await self.call(
                    "GET", "messaging", "/messages", params={"ticket_id": ticket, "kind": "feedback_invitation"}
                )
            ).json()
            if found:
                invitation = found[0]
                break
            await asyncio.sleep(0.5)
        done(started, f"{invitation['channel']} {invitation['status']}" if invitation else "no invitation yet")
        if invitation is None:
            return
        phone = (await self.call("GET", "checkin", f"/residents/{resident}")).json()["phone"]
        body = json.dumps({"message_id": f"demo-{ticket}", "from": phone, "text": "5"}).encode()
        stamp = int(time.time())
        signature = sign(MessagingSettings().gateway_secret, f"demo-{ticket}", stamp, body)
        reply = await self.client.post(URLS["messaging"] + "/inbound/sms", content=body, headers={
            "content-type": "application/json", "webhook-id": f"demo-{ticket}", "webhook-timestamp": str(stamp),
            "webhook-signature": signature})  # fmt: skip
        started = step(
            f'the resident texts back "5" ({reply.json().get("outcome")}); waiting for command to close the ticket'
        )
        stage = ""
        for _ in range(60):
            stage = (await self.call("GET", "command", f"/tickets/{ticket}", headers=worker)).json()["stage"]
            if stage == "closed":
                break
            await asyncio.sleep(0.5)
        done(started, f"{ticket} is {stage}")
        day = (await self.call("GET", "messaging", "/messages", headers=token("resident", resident))).json()
        print(f"  {resident}'s messages today (GET /messages with their own token):")
        for m in reversed(day):
            at = datetime.fromisoformat(m["created_at"]).astimezone(SETTINGS.tz)
            print(f"   {at:%H:%M} {m['channel']:<5} {m['status']:<9} {m['text'].splitlines()[0][:70]}")
        print(f"  every message as its recipient reads it: {URLS['messaging']}/outbox")

    async def front_door(self) -> None:
        """A household's link and a building lead's invitation, to open the pages (README: from a phone)."""
        heading("The pages: open these in a browser (or a phone on the same network, see the README)")
        households = (await self.call("GET", "checkin", "/households", params={"building_id": "B01"})).json()[
            "households"
        ]
        if not households:
            print("  no household in building B01")
            return
        portal_admin = {
            "Authorization": "Bearer "
            + operator_token(SETTINGS.keys_dir, sub="demo-admin", role="admin", audience="portal")
        }
        household = households[0]
        link = (
            await self.call(
                "POST", "portal", f"/admin/households/{household['household_id']}/link", json={}, headers=portal_admin
            )
        ).json()
        names = "、".join(m["name"] for m in household["members"])
        print(f"  household {household['unit']}-{household['room']} of building B01 ({names}): {link['url']}")
        invitation = (
            await self.call(
                "POST",
                "portal",
                "/admin/invitations",
                headers=portal_admin,
                json={"role": "building_lead", "sub": "lead-B01", "building_ids": ["B01"]},
            )
        ).json()
        print(f"  building lead of B01 (one-time link): {invitation['url']}")
        runs = getattr(self, "runs", None) or []
        people = [
            ("command center's board, meeting and heat map (desktop)", {"role": "command", "sub": "cmd-duty"}),
            ("grid worker gw-G1, the follow-up list", {"role": "grid_worker", "sub": "gw-G1", "grid_ids": ["G1"]}),
            ("supplies officer, stock and transfers", {"role": "supplies_officer", "sub": "officer-1"}),
            ("dispatcher, plan a slot and assign by hand", {"role": "dispatcher", "sub": "dispatcher-1"}),
        ]
        if runs:
            volunteer = max(runs, key=lambda r: len(r["stops"]))["volunteer_id"]
            people.append((f"volunteer {volunteer}, today's run", {"role": "volunteer", "sub": volunteer}))
        for who, body in people:
            url = (await self.call("POST", "portal", "/admin/invitations", headers=portal_admin, json=body)).json()[
                "url"
            ]
            print(f"  {who} (one-time link): {url}")
        print("  QR sheet of B01:  .venv/bin/firstline qr --building B01 --out B01.pdf")
        print(
            f"  paper: the building lead prints {URLS['portal']}/paper/buildings/B01/checkins.pdf and keys it in at .../checkins/entry"
        )
        for department in ("health", "police", "property"):  # partner desks: their inbox, no Kafka consumer
            desk = (
                await self.call(
                    "POST", "portal", "/admin/invitations", headers=portal_admin,
                    json={"role": "partner", "sub": f"{department}-duty", "department": department},
                )
            ).json()  # fmt: skip
            print(f"  {department} desk (one-time link): {desk['url']}")
        staff = (
            await self.call(
                "POST",
                "portal",
                "/admin/invitations",
                headers=portal_admin,
                json={"role": "command", "sub": "cmd-lead"},
            )
        ).json()
        print(f"  figures screen 数据大屏: sign in with {staff['url']} then open {URLS['portal']}/screen")

    async def where_next(self) -> None:
        heading("Where to look next")
        for name, url in URLS.items():
            if self.up.get(name):
                print(f"  {name:<9} {url}/docs (OpenAPI)   {url}/asyncapi   {url}/metrics")
        print(
            "  metrics:  deploy/prometheus/prometheus.sh start  -> Prometheus on http://127.0.0.1:9090 (alerts, rules);"
        )
        print("            Grafana dashboards with Docker (docker compose up): docs/operations.md")
        print("  tokens:   .venv/bin/firstline token --role grid_worker --sub gw-G1 --grid-id G1")
        print("  partners: read partner.health.v1 / partner.property.v1 / partner.police.v1 on 127.0.0.1:9092 (README)")
        print("  stop:     make down")


async def main() -> None:
    started = time.monotonic()
    # Expire idle connections before uvicorn does (5 s), or a reused one can be closed under us.
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(keepalive_expiry=2)) as client:
        demo = Demo(client)
        await demo.which_services_run()
        if not demo.up.get("checkin"):
            sys.exit("the check-in service is not running: start the stack with `make up`")
        if demo.up.get("command"):
            await demo.open_command_center()
        await demo.seed_residents()
        if demo.up.get("supplies"):
            await demo.stock_the_depots()
        if demo.up.get("dispatch"):
            await demo.enlist_volunteers()
        await demo.play_check_ins()
        if demo.up.get("messaging"):
            await demo.remind()
        await demo.sweep()
        if demo.up.get("dispatch") and demo.up.get("supplies"):
            await demo.raise_requests()
            await demo.deliver()
        if demo.up.get("supplies"):
            await demo.afternoon_stock()
        await demo.show_grid_worker()
        if demo.up.get("dispatch"):
            await demo.show_volunteer()
            await demo.show_hot_demands()
        if demo.up.get("supplies"):
            await demo.show_supplies_officer()
        if demo.up.get("timebank"):
            await demo.show_leaderboard()
        await demo.show_command_center()
        if demo.up.get("messaging") and demo.up.get("command"):
            await demo.show_messages()
        if demo.up.get("portal"):
            await demo.front_door()
        await demo.where_next()
    print(f"\ndemo finished in {time.monotonic() - started:.0f}s; the stack is still running (make down to stop it)")


if __name__ == "__main__":
    asyncio.run(main())
