"""Writes FirstLine's Grafana dashboards (deploy/grafana/dashboards/*.json) from one
description, so that the six dashboards look alike and every query is in one place:

    .venv/bin/python deploy/grafana/build.py

tests/observability checks that the committed JSON is what this writes, and runs every
panel's query against a real Prometheus that scraped the running stack.

Domain figures are the same on every replica (they are read from the service's database),
so queries take `max by (...)` across instances; pipeline and HTTP figures are per process
and are summed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "firstline-prometheus"}
RATE = "$__rate_interval"


class Board:
    def __init__(
        self, uid: str, title: str, description: str, tags: list[str], variables: list[dict] | None = None
    ) -> None:
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.variables = variables or []
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def _place(self, w: int, h: int) -> dict[str, int]:
        if self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        pos = {"x": self._x, "y": self._y, "w": w, "h": h}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def row(self, title: str) -> None:
        if self._x:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self._y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self._y += 1

    def panel(self, kind: str, title: str, description: str, targets: list[tuple[str, str]], *, w: int = 8, h: int = 8,
              unit: str | None = None, instant: bool = False, options: dict | None = None, thresholds: list[tuple[float | None, str]] | None = None,
              transformations: list[dict] | None = None, minimum: float | None = None, maximum: float | None = None) -> None:  # fmt: skip
        defaults: dict[str, Any] = {}
        if unit:
            defaults["unit"] = unit
        if minimum is not None:
            defaults["min"] = minimum
        if maximum is not None:
            defaults["max"] = maximum
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in thresholds]}
        if kind in ("stat", "bargauge", "gauge") and thresholds:
            defaults["color"] = {"mode": "thresholds"}
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": self._place(w, h),
                "targets": [
                    {
                        "refId": chr(ord("A") + i),
                        "datasource": DATASOURCE,
                        "expr": expr,
                        "legendFormat": legend,
                        "instant": instant,
                        "range": not instant,
                        **({"format": "table"} if kind in ("table", "geomap") else {}),
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "options": options or {},
                **({"transformations": transformations} if transformations else {}),
            }
        )

    def stat(self, title: str, description: str, expr: str, **kw) -> None:
        self.panel("stat", title, description, [(expr, "")], w=kw.pop("w", 4), h=kw.pop("h", 4), instant=True,
                   options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "none"}, **kw)  # fmt: skip

    def timeseries(self, title: str, description: str, targets: list[tuple[str, str]], **kw) -> None:
        self.panel(
            "timeseries",
            title,
            description,
            targets,
            options={"legend": {"displayMode": "table", "placement": "right"}},
            **kw,
        )

    def bars(self, title: str, description: str, expr: str, legend: str, **kw) -> None:
        self.panel("bargauge", title, description, [(expr, legend)], instant=True,
                   options={"orientation": "horizontal", "displayMode": "gradient", "reduceOptions": {"calcs": ["lastNotNull"]}}, **kw)  # fmt: skip

    def table(self, title: str, description: str, expr: str, **kw) -> None:
        self.panel("table", title, description, [(expr, "")], instant=True,
                   transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}}}], **kw)  # fmt: skip

    def geomap(
        self,
        title: str,
        description: str,
        expr: str,
        *,
        center: tuple[float, float] = (31.23, 121.47),
        zoom: int = 15,
        **kw,
    ) -> None:
        """A heat map on a map: lat/lon labels (one per building or H3 cell, bounded) become
        numbers, the value weighs the heat."""
        self.panel(
            "geomap",
            title,
            description,
            [(expr, "")],
            instant=True,
            w=kw.pop("w", 12),
            h=kw.pop("h", 12),
            transformations=[
                {
                    "id": "convertFieldType",
                    "options": {
                        "conversions": [
                            {"targetField": "lat", "destinationType": "number"},
                            {"targetField": "lon", "destinationType": "number"},
                        ]
                    },
                },
            ],
            options={
                "view": {"id": "coords", "lat": center[0], "lon": center[1], "zoom": zoom},
                "controls": {"showZoom": True, "mouseWheelZoom": True},
                "basemap": {"type": "default", "name": "Basemap"},
                "layers": [
                    {
                        "type": "heatmap",
                        "name": "热力 Heat",
                        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                        "config": {
                            "blur": 15,
                            "radius": 25,
                            "weight": {"field": "Value", "fixed": 1, "min": 0, "max": 1},
                        },
                        "tooltip": True,
                    },
                    {
                        "type": "markers",
                        "name": "数量 Count",
                        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
                        "config": {
                            "size": {"field": "Value", "fixed": 5, "min": 4, "max": 20},
                            "showLegend": False,
                            "color": {"fixed": "red"},
                            "fillOpacity": 0.4,
                        },
                        "tooltip": True,
                    },
                ],
                "tooltip": {"mode": "details"},
            },
            **kw,
        )

    def json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["firstline", *self.tags],
            "timezone": "browser",
            "editable": True,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "links": [{"title": "FirstLine", "type": "dashboards", "tags": ["firstline"], "asDropdown": True}],
            "panels": self.panels,
        }


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "var"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


PCT = [(None, "red"), (0.8, "orange"), (0.95, "green")]
COUNT_BAD = [(None, "green"), (1, "orange"), (5, "red")]

# -- the building blocks every dashboard shares ---------------------------------------------

CHECKED_IN = "max by (grid_id, building_id) (firstline_checkin_checked_in_residents)"
EXPECTED = "max by (grid_id, building_id) (firstline_checkin_expected_residents)"
TICKETS = "max by (kind, stage, department, priority) (firstline_command_tickets)"
OVERDUE = "max by (kind, department, priority, breach) (firstline_command_tickets_overdue)"
REQUESTS = "max by (category, status, priority) (firstline_dispatch_requests)"
OPEN_REQUESTS = 'max by (category, status, priority) (firstline_dispatch_requests{status!~"fulfilled|cancelled"})'
STOCK_ALERTS = 'max by (depot, item, state) (firstline_supplies_stock_alert{state!="ok"})'
FOLLOWUPS = 'max by (stage, department, priority) (firstline_command_tickets{kind="followup"})'
FOLLOWUPS_DONE = (
    'max by (stage, department, priority) (firstline_command_tickets{kind="followup", stage=~"resolved|closed"})'
)


def overview() -> Board:
    b = Board("firstline-overview", "指挥中心总览 Command center overview",
              "What the command center decides from: completion, fevers, overdue tickets, stock, demand, the heat map.", ["command"])  # fmt: skip
    b.row("今天 Today")
    b.stat("打卡完成率 Check-in completion", "Residents who checked in today / residents expected", f"sum({CHECKED_IN}) / sum({EXPECTED})",
           unit="percentunit", thresholds=PCT)  # fmt: skip
    b.stat("未打卡 Missed", "Residents the cutoff sweep found missing today", "sum(max by (grid_id) (firstline_checkin_missed_residents))",
           thresholds=COUNT_BAD)  # fmt: skip
    b.stat("发热/症状 Fever or symptoms", "Today's check-ins with fever or symptoms", "sum(max by (grid_id, kind) (firstline_checkin_anomalies))",
           thresholds=COUNT_BAD)  # fmt: skip
    b.stat(
        "超时工单 Overdue tickets",
        "Active tickets past their respond or resolve deadline",
        f"sum({OVERDUE})",
        thresholds=COUNT_BAD,
    )
    b.stat("库存告警 Stock alerts", "Item-depot positions low or out", f"sum({STOCK_ALERTS})",
           thresholds=COUNT_BAD)  # fmt: skip
    b.stat("待办需求 Open requests", "Residents' requests not yet fulfilled", f"sum({OPEN_REQUESTS})")
    b.row("地图 Map")
    b.geomap("今日需跟进 Follow-ups by building (today)", "Missed check-ins plus fevers or symptoms per building, at the building's coordinates",
             "max by (grid_id, building_id, lat, lon) (firstline_checkin_building_followups)")  # fmt: skip
    b.geomap("问题热力图 Problems by H3 cell (24 h)", "Located problems (fevers, missed check-ins, requests, complaints) of the last 24 h per H3 cell",
             "sum by (h3_cell, lat, lon) (max by (h3_cell, lat, lon, kind) (firstline_command_signals_by_cell))")  # fmt: skip
    b.row("工单 Tickets")
    b.bars("工单阶段 Tickets by stage", "discovered → responding → resolved → closed (reopened when feedback says no)",
           f"sum by (stage) ({TICKETS})", "{{stage}}")  # fmt: skip
    b.bars("超时工单 Overdue by kind", "Which kinds of problem are late, and on which deadline",
           f"sum by (kind, breach) ({OVERDUE})", "{{kind}} ({{breach}})")  # fmt: skip
    b.bars("跟进解决率 Follow-up resolution", "Follow-up tickets resolved or closed / all follow-up tickets",
           f"sum({FOLLOWUPS_DONE}) / sum({FOLLOWUPS})",
           "followup", unit="percentunit", minimum=0, maximum=1, thresholds=PCT)  # fmt: skip
    b.timeseries("响应与解决时间 Time to respond / resolve (24 h avg)", "Average minutes from opening to acknowledgement and to resolution",
                 [("max by (kind) (firstline_command_time_to_respond_seconds_avg) / 60", "respond {{kind}}"),
                  ("max by (kind) (firstline_command_time_to_resolve_seconds_avg) / 60", "resolve {{kind}}")], unit="m", w=12)  # fmt: skip
    b.bars("满意度 Satisfaction", "Average feedback score (1-5) by department", "max by (department) (firstline_command_satisfaction_avg)",
           "{{department}}", minimum=1, maximum=5, thresholds=[(None, "red"), (3, "orange"), (4, "green")], w=12)  # fmt: skip
    b.row("需求与服务 Demand and services")
    b.timeseries("热点需求 Requests raised per hour", "What residents ask for most",
                 [("sum by (category) (increase(max by (category) (firstline_dispatch_requests_raised_total)[1h:1m]))", "{{category}}")], w=12)  # fmt: skip
    b.table(
        "服务状态 Services",
        "1 = Prometheus scrapes the service",
        'max by (service, instance) (up{job="firstline"})',
        w=12,
    )
    return b


def checkin() -> Board:
    grid = variable("grid", "网格 Grid", "label_values(firstline_checkin_grid_completion_ratio, grid_id)")
    b = Board("firstline-checkin", "打卡 Check-in", "Which grids and buildings lag on check-in or sampling, who is unwell, how reminders go.",
              ["checkin"], [grid])  # fmt: skip
    sel = '{grid_id=~"$grid"}'
    b.row("今日打卡 Today's check-in")
    b.stat("完成率 Completion", "Checked in / expected, grids selected",
           f"sum(max by (grid_id, building_id) (firstline_checkin_checked_in_residents{sel})) / sum(max by (grid_id, building_id) (firstline_checkin_expected_residents{sel}))",
           unit="percentunit", thresholds=PCT, w=6)  # fmt: skip
    b.stat("应打卡 Expected", "Residents expected today (registered, not away)",
           f"sum(max by (grid_id, building_id) (firstline_checkin_expected_residents{sel}))", w=6)  # fmt: skip
    b.stat("距截止 Since cutoff", "Hours since today's cutoff (negative before it)", "max(firstline_checkin_seconds_since_cutoff) / 3600",
           unit="h", w=6)  # fmt: skip
    b.stat("未打卡 Missed", "Found missing by today's sweep", f"sum(max by (grid_id) (firstline_checkin_missed_residents{sel}))",
           thresholds=COUNT_BAD, w=6)  # fmt: skip
    b.bars("网格完成率 Completion by grid", "Target 95% an hour after the cutoff (alert FirstLineCheckinCompletionLow)",
           f"sort(max by (grid_id) (firstline_checkin_grid_completion_ratio{sel}))", "{{grid_id}}", unit="percentunit",
           minimum=0, maximum=1, thresholds=PCT)  # fmt: skip
    b.bars("楼栋完成率 Lowest buildings", "The 15 buildings with the lowest completion",
           f"bottomk(15, max by (grid_id, building_id) (firstline_checkin_building_completion_ratio{sel}))", "{{building_id}} ({{grid_id}})",
           unit="percentunit", minimum=0, maximum=1, thresholds=PCT)  # fmt: skip
    b.timeseries("完成率走势 Completion through the day", "Per grid",
                 [(f"max by (grid_id) (firstline_checkin_grid_completion_ratio{sel})", "{{grid_id}}")], unit="percentunit")  # fmt: skip
    b.row("健康与跟进 Health and follow-up")
    b.bars("发热/症状 Fever or symptoms by grid", "Today's anomalies", f"max by (grid_id, kind) (firstline_checkin_anomalies{sel})",
           "{{grid_id}} {{kind}}", thresholds=COUNT_BAD)  # fmt: skip
    b.bars("未打卡 Missed by grid", "Residents missed today", f"max by (grid_id) (firstline_checkin_missed_residents{sel})", "{{grid_id}}",
           thresholds=COUNT_BAD)  # fmt: skip
    b.geomap("需跟进楼栋 Follow-ups by building", "Missed + fever or symptoms per building today",
             f"max by (grid_id, building_id, lat, lon) (firstline_checkin_building_followups{sel})", w=8, h=8)  # fmt: skip
    b.row("渠道与提醒 Channels and reminders")
    b.bars("打卡渠道 Check-ins by channel", "App, building lead on someone's behalf, phone...", "max by (channel) (firstline_checkin_checkins_by_channel)",
           "{{channel}}", w=12)  # fmt: skip
    b.bars("提醒 Reminders", "Check-in reminders in messaging's record, by channel and status",
           'max by (channel, status) (firstline_messaging_messages{kind="checkin_reminder"})', "{{channel}} {{status}}", w=12)  # fmt: skip
    b.row("核酸采样 Sampling")
    b.bars("采样完成率 Sampling completion", "Per recent round and building", "max by (round_id, building_id) (firstline_checkin_sampling_completion_ratio)",
           "{{round_id}} {{building_id}}", unit="percentunit", minimum=0, maximum=1, thresholds=PCT, w=16)  # fmt: skip
    b.stat("落后楼栋 Lagging buildings", "Buildings below the round's minimum at its deadline",
           "sum(max by (round_id) (firstline_checkin_sampling_lagging_buildings))", thresholds=COUNT_BAD, w=8, h=8)  # fmt: skip
    return b


def supplies() -> Board:
    b = Board(
        "firstline-supplies",
        "物资 Supplies",
        "Which stock is about to run out, where, and how long it lasts.",
        ["supplies"],
    )
    b.row("告警 Alerts")
    b.stat("断货 Out", "Positions with nothing available", 'sum(max by (depot, item) (firstline_supplies_stock_alert{state="out"}))',
           thresholds=[(None, "green"), (1, "red")], w=6)  # fmt: skip
    b.stat("不足 Low", "Positions below their line", 'sum(max by (depot, item) (firstline_supplies_stock_alert{state="low"}))',
           thresholds=[(None, "green"), (1, "orange")], w=6)  # fmt: skip
    b.stat(
        "预留中 Reserved for deliveries",
        "Reservations held",
        'max(firstline_supplies_reservations{status="held"})',
        w=6,
    )
    b.stat("调拨建议 Suggested transfers", "Open suggestions to move stock between depots",
           'max(firstline_supplies_transfer_suggestions{status="open"})', w=6)  # fmt: skip
    b.table("告警清单 Positions low or out", "state = out or low; act on out first",
            'max by (depot, item, category, state) (firstline_supplies_stock_alert{state!="ok"}) == 1', w=24, h=7)  # fmt: skip
    b.row("库存 Stock")
    b.bars("可用天数 Days of cover", "Available stock / recent daily consumption; red under 3 days",
           "sort(min by (depot, item) (firstline_supplies_days_of_cover))", "{{item}} @ {{depot}}", unit="d",
           thresholds=[(None, "red"), (3, "orange"), (7, "green")], w=12, h=10)  # fmt: skip
    b.bars("可用/警戒线 Available vs line", "Available stock as a share of the line it is held against (below 1 = below the line)",
           "sort(max by (depot, item) (firstline_supplies_stock_available) / max by (depot, item) (firstline_supplies_stock_threshold > 0))",
           "{{item}} @ {{depot}}", unit="percentunit", thresholds=[(None, "red"), (1, "orange"), (1.5, "green")], w=12, h=10)  # fmt: skip
    b.timeseries("在库 On hand", "Units at each depot (expired included)",
                 [("max by (depot, item) (firstline_supplies_stock_on_hand)", "{{item}} @ {{depot}}")], w=12)  # fmt: skip
    b.timeseries("日消耗 Daily consumption", "Units issued per day, recent average",
                 [("max by (depot, item) (firstline_supplies_daily_consumption)", "{{item}} @ {{depot}}")], w=12)  # fmt: skip
    b.row("流水 Movements")
    b.timeseries("出入库 Movements per hour", "Receipts, issues, transfers and adjustments",
                 [("sum by (kind) (increase(max by (kind) (firstline_supplies_movements_total)[1h:1m]))", "{{kind}}")], w=12)  # fmt: skip
    b.bars(
        "预留 Reservations by status",
        "held, issued, released, rejected",
        "max by (status) (firstline_supplies_reservations)",
        "{{status}}",
        w=6,
    )
    b.bars("过期 Expired on the shelf", "Expired units to write off", "max by (depot, item) (firstline_supplies_stock_expired) > 0",
           "{{item}} @ {{depot}}", w=6)  # fmt: skip
    return b


def dispatch() -> Board:
    b = Board(
        "firstline-dispatch",
        "调度 Dispatch",
        "What residents ask for, where requests stand, what is late, and the deliveries.",
        ["dispatch"],
    )
    b.row("需求 Requests")
    b.stat("待办 Open", "Not yet fulfilled", f"sum({OPEN_REQUESTS})", w=6)
    b.stat("超时 Overdue", "Open requests past their due time", "sum(max by (category, priority) (firstline_dispatch_requests_overdue))",
           thresholds=COUNT_BAD, w=6)  # fmt: skip
    b.stat("已完成 Fulfilled", "All time", "sum(max by (category) (firstline_dispatch_requests_fulfilled_total))", w=6)
    b.stat("志愿者 Volunteers", "Active volunteers", "sum(max by (group) (firstline_dispatch_volunteers))", w=6)
    b.bars(
        "按阶段 By stage",
        "awaiting_stock → pending → assigned → planned → fulfilled",
        f"sum by (status) ({REQUESTS})",
        "{{status}}",
    )
    b.bars(
        "按类别 By category (hot demands)",
        "All requests by category",
        f"sort_desc(sum by (category) ({REQUESTS}))",
        "{{category}}",
    )
    b.bars(
        "按优先级 Open by priority", "Open requests by priority", f"sum by (priority) ({OPEN_REQUESTS})", "{{priority}}"
    )
    b.timeseries("每小时新需求 Raised per hour", "By category",
                 [("sum by (category) (increase(max by (category) (firstline_dispatch_requests_raised_total)[1h:1m]))", "{{category}}")], w=12)  # fmt: skip
    b.bars("超时需求 Overdue by category", "Open and past due", "max by (category, priority) (firstline_dispatch_requests_overdue)",
           "{{category}} {{priority}}", thresholds=COUNT_BAD, w=12)  # fmt: skip
    b.row("配送 Deliveries")
    b.stat(
        "配送趟数 Delivery runs",
        "Runs planned, all time",
        "sum(max by (status) (firstline_dispatch_delivery_runs_total))",
        w=6,
    )
    b.stat(
        "路线里程 Route distance",
        "Kilometres planned, all time",
        "max(firstline_dispatch_route_distance_meters_total) / 1000",
        unit="km",
        w=6,
    )
    b.stat("平均完成时间 Time to fulfil", "Raised → fulfilled, requests fulfilled in the last 24 h",
           "avg(max by (category) (firstline_dispatch_fulfilment_seconds_avg)) / 3600", unit="h", w=6)  # fmt: skip
    b.stat("服务时长 Volunteer hours", "Service minutes on fulfilled requests, all time",
           "sum(max by (category) (firstline_dispatch_service_minutes_total)) / 60", unit="h", w=6)  # fmt: skip
    b.bars(
        "志愿者分组 Volunteers by group",
        "errands 跑腿, tech 技术, publicity 宣传, counsellor",
        "max by (group) (firstline_dispatch_volunteers)",
        "{{group}}",
    )
    b.bars("需求激增 Demand surges", "Surges detected in the last 24 h",
           "sum by (category) (increase(max by (category) (firstline_dispatch_demand_surges_total)[24h:5m]))", "{{category}}")  # fmt: skip
    b.bars("完成时间 Time to fulfil by category", "Average, last 24 h", "max by (category) (firstline_dispatch_fulfilment_seconds_avg) / 60",
           "{{category}}", unit="m")  # fmt: skip
    return b


def timebank() -> Board:
    b = Board(
        "firstline-timebank",
        "时间银行 Time bank",
        "Hours volunteers earned and residents spent, coupons and members.",
        ["timebank"],
    )
    b.row("时长 Hours")
    b.stat("累计获得 Hours credited", "All time", 'max(firstline_timebank_hours_total{kind="earn"})', unit="h", w=6)
    b.stat("累计兑换 Hours redeemed", "All time", 'max(firstline_timebank_hours_total{kind="redeem"})', unit="h", w=6)
    b.stat(
        "成员余额 Members' balance",
        "Hours held by members now",
        'max(firstline_timebank_member_balance{unit="hours"})',
        unit="h",
        w=6,
    )
    b.stat("成员 Members", "Volunteers and residents", "sum(max by (kind) (firstline_timebank_members))", w=6)
    b.timeseries("每日时长 Hours per day", "Credited, redeemed and refunded",
                 [("sum by (kind) (increase(max by (kind) (firstline_timebank_hours_total)[1d:5m]))", "{{kind}}")], unit="h", w=12)  # fmt: skip
    b.bars(
        "兑换 Redemptions",
        "By purpose and status",
        "max by (purpose, status) (firstline_timebank_redemptions)",
        "{{purpose}} {{status}}",
        w=12,
    )
    b.row("积分与优惠券 Points and coupons")
    b.bars(
        "优惠券 Coupons",
        "Issued and redeemed at merchants",
        "max by (status) (firstline_timebank_coupons)",
        "{{status}}",
    )
    b.bars(
        "积分 Points by kind of transfer",
        "Awarded, spent on coupons and rewards",
        "max by (kind) (firstline_timebank_points_total)",
        "{{kind}}",
    )
    b.bars("成员 Members by kind", "volunteer, resident", "max by (kind) (firstline_timebank_members)", "{{kind}}")
    return b


def pipeline() -> Board:
    service = variable("service", "服务 Service", 'label_values(up{job="firstline"}, service)')
    s = '{service=~"$service"}'
    b = Board("firstline-pipeline", "管道健康 Pipeline health", "Is every event reaching Kafka and being applied? Are the services up and fast?",
              ["ops"], [service])  # fmt: skip
    b.row("服务 Services")
    b.bars("在线 Up", "1 = scraped", 'max by (service) (up{job="firstline", service=~"$service"})', "{{service}}",
           thresholds=[(None, "red"), (1, "green")])  # fmt: skip
    b.timeseries(
        "请求速率 HTTP requests/s",
        "By service",
        [(f"sum by (service) (rate(firstline_http_requests_total{s}[{RATE}]))", "{{service}}")],
        unit="reqps",
    )
    b.timeseries("错误率 5xx ratio", "5xx answers / all answers (alert above 5%)",
                 [(f'sum by (service) (rate(firstline_http_requests_total{{status=~"5..", service=~"$service"}}[{RATE}])) / sum by (service) (rate(firstline_http_requests_total{s}[{RATE}]))',
                   "{{service}}")], unit="percentunit")  # fmt: skip
    b.timeseries("延迟 HTTP p95 latency", "95th percentile by service",
                 [(f"histogram_quantile(0.95, sum by (le, service) (rate(firstline_http_request_seconds_bucket{s}[{RATE}])))", "{{service}}")], unit="s", w=12)  # fmt: skip
    b.timeseries("4xx 请求 Rejected input/s", "4xx answers: bad input, missing permission",
                 [(f'sum by (service, route) (rate(firstline_http_requests_total{{status=~"4..", service=~"$service"}}[{RATE}]))', "{{service}} {{route}}")],
                 unit="reqps", w=12)  # fmt: skip
    b.row("事件 Events")
    b.timeseries(
        "发件箱积压 Outbox backlog",
        "Events committed, not yet on Kafka",
        [(f"sum by (service) (firstline_outbox_backlog{s})", "{{service}}")],
    )
    b.timeseries("最老未发 Oldest unsent", "Age of the oldest event waiting in the outbox (alert above 2 min)",
                 [(f"max by (service) (firstline_outbox_oldest_age_seconds{s})", "{{service}}")], unit="s")  # fmt: skip
    b.timeseries("发布速率 Published/s", "Events the relays put on Kafka",
                 [(f"sum by (service) (rate(firstline_outbox_published_total{s}[{RATE}]))", "{{service}}")], unit="ops")  # fmt: skip
    b.timeseries("消费积压 Consumer lag", "Messages behind the end of each topic, per consumer group",
                 [(f"max by (consumer, topic) (firstline_consumer_lag{s})", "{{consumer}} ← {{topic}}")], w=12)  # fmt: skip
    b.timeseries("消费速率 Applied/s", "Events applied or ignored, by consumer",
                 [(f"sum by (consumer, outcome) (rate(firstline_events_consumed_total{s}[{RATE}]))", "{{consumer}} {{outcome}}")], unit="ops", w=12)  # fmt: skip
    b.timeseries("处理耗时 Handler p95", "Time to apply an event, 95th percentile",
                 [(f"histogram_quantile(0.95, sum by (le, consumer) (rate(firstline_handler_seconds_bucket{s}[{RATE}])))", "{{consumer}}")], unit="s")  # fmt: skip
    b.timeseries("Kafka 批次 Batches received/s", "Messages FastStream handed to each consumer, by outcome (error: the whole batch failed; alert)",
                 [(f"sum by (service, status) (rate(faststream_received_processed_messages_total{s}[{RATE}]))", "{{service}} {{status}}")],
                 unit="ops", w=12)  # fmt: skip
    b.timeseries("批次耗时 Batch p95", "Time FastStream measured to apply a batch of messages, 95th percentile",
                 [(f"histogram_quantile(0.95, sum by (le, service) (rate(faststream_received_processed_messages_duration_seconds_bucket{s}[{RATE}])))",
                   "{{service}}")], unit="s", w=12)  # fmt: skip
    b.bars("死信 Dead letters (24 h)", "Messages sent to <service>.dlq.v1, by reason",
           f"sum by (consumer, kind) (increase(firstline_dead_letters_total{s}[24h]))", "{{consumer}} {{kind}}", thresholds=COUNT_BAD)  # fmt: skip
    b.timeseries("事件到工单 Event → ticket p95", "From an event's time to the command center's ticket",
                 [(f"histogram_quantile(0.95, sum by (le) (rate(firstline_command_event_to_ticket_seconds_bucket[{RATE}])))", "p95")], unit="s")  # fmt: skip
    b.row("进程 Processes")
    b.timeseries("CPU 占用 CPU", "CPU seconds per second of each service process (1 = one core)",
                 [(f"sum by (service) (rate(process_cpu_seconds_total{s}[{RATE}]))", "{{service}}")], unit="percentunit")  # fmt: skip
    b.timeseries("内存 Resident memory", "Resident memory of each service process",
                 [(f"max by (service) (process_resident_memory_bytes{s})", "{{service}}")], unit="bytes")  # fmt: skip
    b.timeseries("垃圾回收 GC collections/s", "Python garbage collections, by generation (the services collect rarely, by design)",
                 [(f"sum by (service, generation) (rate(python_gc_collections_total{s}[{RATE}]))", "{{service}} gen {{generation}}")],
                 unit="ops")  # fmt: skip
    b.row("指标刷新 Figures")
    b.bars("指标年龄 Age of domain figures", "Seconds since each service last computed its figures (alert above 2 min)",
           f"time() - max by (service) (firstline_metrics_refreshed_timestamp_seconds{s})", "{{service}}", unit="s",
           thresholds=[(None, "green"), (60, "orange"), (120, "red")], w=12)  # fmt: skip
    b.bars("刷新失败 Refresh failures", "Failed refreshes since start", f"max by (service) (firstline_metrics_refresh_failures_total{s})",
           "{{service}}", thresholds=COUNT_BAD, w=12)  # fmt: skip
    return b


BOARDS = (overview, checkin, supplies, dispatch, timebank, pipeline)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    out = {}
    for make in BOARDS:
        board = make()
        out[f"{board.uid.removeprefix('firstline-')}.json"] = (
            json.dumps(board.json(), ensure_ascii=False, indent=2) + "\n"
        )
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
