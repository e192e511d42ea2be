"""Dispatch figures for Prometheus (`firstline_dispatch_...`), computed from this service's
database by a periodic refresh: what residents ask for, where requests stand, what is
late, and the deliveries volunteers make. Labels are categories, statuses, priorities and
volunteer groups: bounded; never a resident or a volunteer.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import case, func, select

from common.metrics import DomainMetrics, Family, Values
from common.runtime import Runtime
from dispatch.domain import CATEGORIES
from dispatch.models import DeliveryRun, ServiceRequest, Surge, Volunteer
from dispatch.service import DispatchService

REFRESH_INTERVAL_S = 10.0
OPEN = ("awaiting_stock", "waiting_for_stock", "pending", "assigned", "planned")
RECENT = timedelta(hours=24)


class DispatchMetrics:
    def __init__(self, runtime: Runtime, service: DispatchService) -> None:
        self.runtime = runtime
        self.service = service
        m = self.domain = DomainMetrics(runtime.registry, "dispatch")
        self.requests = m.gauge(
            "firstline_dispatch_requests",
            "Requests by category, status (stage) and priority",
            ("category", "status", "priority"),
        )
        self.raised = m.counter(
            "firstline_dispatch_requests_raised_total", "Requests raised, by category", ("category",)
        )
        self.fulfilled = m.counter(
            "firstline_dispatch_requests_fulfilled_total", "Requests fulfilled, by category", ("category",)
        )
        self.service_minutes = m.counter(
            "firstline_dispatch_service_minutes_total", "Volunteer minutes spent on fulfilled requests", ("category",)
        )
        self.overdue = m.gauge(
            "firstline_dispatch_requests_overdue",
            "Open requests past their due time, by category and priority",
            ("category", "priority"),
        )
        self.fulfil_seconds = m.gauge(
            "firstline_dispatch_fulfilment_seconds_avg",
            "Average time from raising to fulfilment, requests fulfilled in the last 24 h",
            ("category",),
        )
        self.runs = m.counter("firstline_dispatch_delivery_runs_total", "Delivery runs planned, by status", ("status",))
        self.distance = m.counter(
            "firstline_dispatch_route_distance_meters_total", "Route distance of the delivery runs planned"
        )
        self.volunteers = m.gauge("firstline_dispatch_volunteers", "Active volunteers by group", ("group",))
        self.surges = m.counter(
            "firstline_dispatch_demand_surges_total", "Demand surges detected, by category", ("category",)
        )

    def schedule(self) -> None:
        self.runtime.every("metrics", self.refresh, interval_s=REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        await self.domain.refresh(self.compute)

    async def compute(self) -> dict[Family, Values]:
        now = self.service.clock.now()
        R = ServiceRequest
        async with self.runtime.db.session() as session:
            by_stage = (
                await session.execute(
                    select(R.category, R.status, R.priority, func.count()).group_by(R.category, R.status, R.priority)
                )
            ).all()
            fulfilled = (
                await session.execute(
                    select(R.category, func.count(), func.coalesce(func.sum(R.service_minutes), 0))
                    .where(R.status == "fulfilled")
                    .group_by(R.category)
                )
            ).all()
            overdue = (
                await session.execute(
                    select(R.category, R.priority, func.count(), func.sum(case((R.due_by < now, 1), else_=0)))
                    .where(R.status.in_(OPEN))
                    .group_by(R.category, R.priority)
                )
            ).all()
            recent = (
                await session.execute(
                    select(R.category, R.created_at, R.fulfilled_at).where(
                        R.status == "fulfilled", R.fulfilled_at >= now - RECENT
                    )
                )
            ).all()
            runs = (
                await session.execute(
                    select(
                        DeliveryRun.status, func.count(), func.coalesce(func.sum(DeliveryRun.distance_m), 0.0)
                    ).group_by(DeliveryRun.status)
                )
            ).all()
            volunteers = (
                await session.execute(
                    select(Volunteer.group, func.count()).where(Volunteer.active).group_by(Volunteer.group)
                )
            ).all()
            surges = (await session.execute(select(Surge.category, func.count()).group_by(Surge.category))).all()

        zero = {(c,): 0 for c in CATEGORIES}  # every category has a series: "nobody asked" is a figure too
        raised: dict[tuple[str], float] = dict(zero)
        for category, _status, _priority, count in by_stage:
            raised[(category,)] = raised.get((category,), 0) + count
        durations: dict[str, list[float]] = {}
        for category, created_at, fulfilled_at in recent:
            durations.setdefault(category, []).append((fulfilled_at - created_at).total_seconds())
        return {
            self.requests: {(c, s, p): n for c, s, p, n in by_stage},
            self.raised: raised,
            self.fulfilled: {**zero, **{(c,): n for c, n, _m in fulfilled}},
            self.service_minutes: {**zero, **{(c,): float(m) for c, _n, m in fulfilled}},
            self.overdue: {(c, p): late or 0 for c, p, _open, late in overdue},  # 0 where open and on time
            self.fulfil_seconds: {(c,): sum(d) / len(d) for c, d in durations.items()},
            self.runs: {("planned",): 0, **{(s,): n for s, n, _d in runs}},
            self.distance: float(sum(d for _s, _n, d in runs)),
            self.volunteers: {(g,): n for g, n in volunteers},
            self.surges: {**zero, **{(c,): n for c, n in surges}},
        }
