"""A real Prometheus (Debian's package) scrapes the running stack after a little real traffic
over HTTP and Kafka; then every alert rule's expression and every Grafana panel's query must
return data. An alert that should not fire may come back empty: then the expression without
its comparison must return data, or at least every metric it reads must exist."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from common.clock import local_date
from conftest import PORTS
from support import kafka_client, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")


async def ok(response, *codes: int) -> dict:
    assert response.status_code in (codes or (200, 201)), (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    return response.json()


async def play(stack) -> dict:
    """A small community's morning: residents, check-ins (a fever, some misses), a sampling
    round, stock falling below its line, requests fulfilled and credited, tickets worked."""
    tag = uuid.uuid4().hex[:6]
    admin = stack.token("admin", "obs-admin")
    today = local_date(datetime.now(UTC), SHANGHAI)
    homes = [("OG1", f"OB1{tag}", 31.2301), ("OG1", f"OB1{tag}", 31.2301), ("OG1", f"OB1{tag}", 31.2301),
             ("OG1", f"OB1{tag}", 31.2301), ("OG2", f"OB2{tag}", 31.2322), ("OG2", f"OB2{tag}", 31.2322)]  # fmt: skip
    residents = []
    async with stack.client("checkin") as checkin:
        for n, (grid, building, lat) in enumerate(homes):
            body = {"name": f"观测{n}", "phone": "13800000000", "grid_id": grid, "building_id": building, "unit": "1",
                    "room": str(101 + n), "lat": lat, "lon": 121.4701, "tags": ["elderly"] if n == 3 else [],
                    "registered_on": str(today - timedelta(days=3))}  # on the register already: expected today  # fmt: skip
            residents.append((await ok(await checkin.post("/residents", json=body, headers=admin)))["resident_id"])
        for resident, temperature in ((residents[0], 36.6), (residents[1], 38.5), (residents[4], 36.7)):
            body = {
                "resident_id": resident,
                "temperature_c": temperature,
                "symptoms": ["cough"] if temperature > 38 else [],
            }
            await ok(await checkin.post("/checkins", json=body, headers=stack.token("resident", resident)))
        await ok(await checkin.post("/sweeps", json={"date": str(today)}, headers=admin))
        deadline = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        body = {"name": "第3轮核酸", "building_ids": [homes[0][1], homes[4][1]], "deadline": deadline}
        sampling = await ok(await checkin.post("/sampling/rounds", json=body, headers=admin))
        await ok(
            await checkin.post(
                f"/sampling/rounds/{sampling['round_id']}/samples", json={"resident_ids": residents[:2]}, headers=admin
            )
        )

    officer = stack.token("supplies_officer", "obs-officer")
    async with stack.client("supplies") as supplies:
        depot = (
            await ok(
                await supplies.post(
                    "/depots", json={"name": f"东门仓{tag}", "lat": 31.231, "lon": 121.47}, headers=officer
                )
            )
        )["depot_id"]
        masks = (await ok(await supplies.post("/items", json={"sku": f"MASK-{tag}", "name": "口罩", "unit": "box", "category": "protective", "threshold": 50}, headers=officer)))["item_id"]  # fmt: skip
        soap = (await ok(await supplies.post("/items", json={"sku": f"SOAP-{tag}", "name": "消毒液", "unit": "bottle", "category": "disinfection", "threshold": 5}, headers=officer)))["item_id"]  # fmt: skip
        for item, received, issued in ((masks, 100, 60), (soap, 40, 4)):
            await ok(
                await supplies.post(
                    "/stock/receipts", json={"depot_id": depot, "item_id": item, "quantity": received}, headers=officer
                )
            )
            await ok(
                await supplies.post(
                    "/stock/issues",
                    json={"depot_id": depot, "item_id": item, "quantity": issued, "reason": "楼栋发放"},
                    headers=officer,
                )
            )

    dispatcher = stack.token("dispatcher", "obs-dispatcher")
    async with stack.client("dispatch") as dispatch:
        volunteers = {}
        for group in ("tech", "errands"):
            body = {"volunteer_id": f"V{group[:3]}{tag}", "name": f"志愿者{group}", "group": group, "lat": 31.2305, "lon": 121.4705, "capacity": 5, "phone": "13900000000"}  # fmt: skip
            volunteers[group] = (await ok(await dispatch.post("/volunteers", json=body, headers=dispatcher)))[
                "volunteer_id"
            ]

        async def raise_request(body: dict) -> dict | None:
            response = await dispatch.post("/requests", json=body, headers=dispatcher)
            return (
                response.json() if response.status_code == 201 else None
            )  # 404/422 until dispatch learnt the resident

        help_request = await wait_for(lambda: raise_request({"resident_id": residents[3], "category": "tech_help", "details": "手机扫码"}),
                                      timeout=60, what="dispatch to learn the residents from Kafka")  # fmt: skip
        groceries = await ok(await dispatch.post("/requests", json={"resident_id": residents[2], "category": "groceries",
                                                                   "items": [{"item_id": soap, "quantity": 2}]}, headers=dispatcher))  # fmt: skip

        async def assigned(request_id: str) -> dict | None:
            request = await ok(await dispatch.get(f"/requests/{request_id}", headers=dispatcher))
            return request if request["volunteer_id"] and request["status"] in ("assigned", "planned") else None

        helped = await wait_for(
            lambda: assigned(help_request["request_id"]), timeout=60, what="the tech-help request assigned"
        )
        await ok(await dispatch.post(f"/requests/{helped['request_id']}/fulfil", json={"volunteer_id": helped["volunteer_id"], "service_minutes": 45}, headers=dispatcher))  # fmt: skip
        await wait_for(
            lambda: assigned(groceries["request_id"]),
            timeout=60,
            what="the groceries reserved by supplies and assigned",
        )
        await ok(
            await dispatch.post(
                "/runs/plan", json={"depot_lat": 31.231, "depot_lon": 121.47, "time_limit_s": 2}, headers=dispatcher
            )
        )

    async with stack.client("timebank") as timebank:
        member = helped["volunteer_id"]

        async def credited() -> bool:
            response = await timebank.get(f"/members/{member}/balance", headers=admin)
            return response.status_code == 200 and json.dumps(response.json()).find("0.75") >= 0

        await wait_for(credited, timeout=60, what="hours credited for the fulfilled request")
        await ok(await timebank.post("/redemptions", json={"member_id": member, "hours": 0.5, "purpose": "groceries"}, headers=stack.token("volunteer", member)))  # fmt: skip

    async with stack.client("command") as command:

        async def tickets(kind: str) -> list[dict]:
            return await ok(await command.get("/tickets", params={"kind": kind}, headers=admin))

        followups = await wait_for(lambda: tickets("followup"), timeout=60, what="follow-up tickets from CheckInMissed")
        await wait_for(lambda: tickets("stock_shortage"), timeout=60, what="a stock ticket from StockLow")
        first = followups[0]["ticket_id"]
        await ok(await command.post(f"/tickets/{first}/acknowledge", json={}, headers=admin))
        await ok(
            await command.post(f"/tickets/{first}/resolve", json={"resolution": "电话联系，已补打卡"}, headers=admin)
        )
        await ok(
            await command.post(f"/tickets/{first}/feedback", json={"satisfaction": 4, "comment": "及时"}, headers=admin)
        )

    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=stack.kafka))
    await producer.start()
    try:  # garbage on a topic three services consume: each dead-letters it and carries on
        await producer.send_and_wait("dispatch.events.v1", b"{not json", key=b"garbage")
    finally:
        await producer.stop()
    return {"grids": ("OG1", "OG2"), "depot": f"东门仓{tag}"}


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and every dashboard panel, dashboard variables at 'All'."""
    out = []
    for path in sorted((ROOT / "deploy/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((f"alert {rule['alert']}", rule["expr"]))
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "1m")
                for variable in board["templating"]["list"]:
                    expr = expr.replace(f"${variable['name']}", variable["allValue"])
                out.append((f"{path.stem}: {panel['title']}", expr))
    return out


COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*-?[0-9.]+(?![0-9.])")
METRIC = re.compile(r"\b((?:firstline|faststream|process|python)_[a-z_]+|up)\b")


def test_the_extracted_expressions_cover_every_rule_and_panel() -> None:
    found = expressions()
    assert sum(where.startswith("alert ") for where, _ in found) == 14
    assert len(found) > 80
    assert COMPARISON.sub("", "max by (x) (m) > 500") == "max by (x) (m)"
    assert COMPARISON.sub("", 'a{status=~"5.."} / b > 0.05') == 'a{status=~"5.."} / b'


async def test_every_alert_and_dashboard_query_returns_data(stack, prometheus) -> None:
    def present(expr: str) -> bool:
        return bool(prometheus.query(expr))

    # increase() needs a sample before the first dead letter: let Prometheus scrape the zeros first.
    await wait_for(lambda: len(prometheus.query('firstline_dead_letters_total == 0')) > 0
                   and len(prometheus.query('up{job="firstline"} == 1')) == len(PORTS),
                   timeout=60, interval=1, what="a first scrape of every service, dead-letter counters at 0")  # fmt: skip
    await play(stack)

    # The figures of the traffic above, as Prometheus sees them after the next refreshes.
    for expr in (
        'firstline_checkin_grid_completion_ratio{grid_id="OG1"} == 0.5',
        "firstline_checkin_sampling_completion_ratio",
        'firstline_supplies_stock_alert{item="口罩", state="low"} == 1',
        "firstline_supplies_days_of_cover",
        "firstline_dispatch_requests_fulfilled_total >= 1",
        'firstline_timebank_hours_total{kind="earn"} == 0.75',
        "firstline_timebank_redemptions",
        "firstline_command_satisfaction_avg == 4",
        "firstline_consumer_lag",
        "firstline_dead_letters_total >= 1",
        'up{job="firstline"} == 1',
    ):
        try:
            await wait_for(lambda e=expr: present(e), timeout=90, interval=1, what=f"Prometheus to show {expr}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; now: {prometheus.query(COMPARISON.sub('', expr))}") from None
    await wait_for(
        lambda: len(prometheus.query('up{job="firstline"} == 1')) == len(PORTS),
        timeout=30,
        interval=1,
        what="every service up",
    )
    # A stock below its line makes the real alert pending (it fires after 5 minutes).
    await wait_for(
        lambda: present('ALERTS{alertname="FirstLineStockLow", item="口罩"}'),
        timeout=30,
        interval=1,
        what="FirstLineStockLow pending",
    )
    try:
        await wait_for(lambda: present('ALERTS{alertname="FirstLineDeadLetters", alertstate="firing"}'), timeout=60, interval=1,
                       what="FirstLineDeadLetters firing")  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}; dead letters: {prometheus.query('firstline_dead_letters_total[2m]')}") from None

    groups = prometheus.get("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 14 and all(r["health"] == "ok" for r in rules), [
        (r["name"], r.get("lastError")) for r in rules
    ]

    missing, how = [], {"data": 0, "without comparison": 0, "metrics exist": 0}
    names = set(prometheus.get("/api/v1/label/__name__/values"))
    panels = panels_with_data = 0  # alerts that should not fire are empty by design; panels are not
    for where, expr in expressions():
        panels += not where.startswith("alert ")
        if prometheus.query(expr):
            how["data"] += 1
            panels_with_data += not where.startswith("alert ")
        elif prometheus.query(COMPARISON.sub("", expr)):
            how["without comparison"] += 1
        elif all(name in names for name in METRIC.findall(expr)):
            how["metrics exist"] += 1
        else:
            missing.append(f"{where}: {expr} (absent: {sorted(set(METRIC.findall(expr)) - names)})")
    assert not missing, "queries with no data:\n" + "\n".join(missing)
    print(f"\n{sum(how.values())} expressions on {stack.backend}: {how}")
    # nearly every panel shows real figures, not just a known name
    assert panels_with_data >= 0.8 * panels, (panels_with_data, panels, how)
