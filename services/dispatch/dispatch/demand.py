"""Hot demands: requests counted by time and grid, and each window tested against its baseline."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from common.db import insert_ignore
from common.errors import Invalid
from common.events.dispatch import DemandSurge
from dispatch import domain
from dispatch.matching import Matching
from dispatch.models import ServiceRequest, Surge


class Demand(Matching):
    async def demand(self, since: datetime, until: datetime, bucket: str) -> dict:
        if until <= since:
            raise Invalid("'to' must be after 'from'")
        if until - since > timedelta(days=93):
            raise Invalid("ask for at most 93 days at a time")
        async with self.runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(ServiceRequest.created_at, ServiceRequest.category, ServiceRequest.grid_id).where(
                        ServiceRequest.created_at >= since, ServiceRequest.created_at < until
                    )
                )
            ).all()
            surges = (
                (
                    await session.execute(
                        select(Surge)
                        .where(Surge.window_end > since, Surge.window_start < until)
                        .order_by(Surge.window_start)
                    )
                )
                .scalars()
                .all()
            )
        series = domain.demand_series(rows, bucket, self.tz)
        latest = await self._latest_tests()
        return {
            "from": since,
            "to": until,
            "bucket": bucket,
            "totals": series.totals,
            "by_time": series.buckets,
            "by_grid": series.grids,
            "latest_window": latest,
            "surges": [s.model_dump() for s in surges],
        }

    async def _latest_tests(self) -> dict:
        """The latest complete window of each category tested against its baseline."""
        length = timedelta(hours=self.settings.surge_window_hours)
        window_end = domain.window_floor(self.clock.now(), length)
        window_start = window_end - length
        baseline_start = window_start - timedelta(days=self.settings.surge_baseline_days)
        async with self.runtime.db.session() as session:
            first = await session.scalar(
                select(func.min(ServiceRequest.created_at)).where(ServiceRequest.source != "green_channel")
            )
            rows = (
                await session.execute(
                    select(ServiceRequest.created_at, ServiceRequest.category).where(
                        ServiceRequest.created_at >= baseline_start,
                        ServiceRequest.created_at < window_end,
                        ServiceRequest.source != "green_channel",
                    )
                )
            ).all()
        if first is None:
            return {"window_start": window_start, "window_end": window_end, "categories": {}}
        history_start = max(baseline_start, domain.window_floor(first, length))
        windows = int((window_start - history_start) / length)
        counts: dict[str, list[int]] = {c: [0] * (windows + 1) for c in domain.CATEGORIES}
        for at, category in rows:
            slot = int((at - history_start) / length)
            if 0 <= slot <= windows and category in counts:
                counts[category][slot] += 1
        tests = {}
        for category, series in counts.items():
            if windows < 1:
                continue  # no history yet: nothing to compare with
            test = domain.surge_test(series[-1], series[:-1], self.settings.surge_alpha, self.settings.surge_min_count)
            tests[category] = {
                "count": test.count,
                "baseline": test.baseline,
                "p_value": test.p_value,
                "surge": test.surge,
                "baseline_windows": windows,
            }
        return {"window_start": window_start, "window_end": window_end, "categories": tests}

    async def detect_surges(self) -> int:
        """The job: emit `DemandSurge` once per category and window when the test says so."""
        latest = await self._latest_tests()
        found = 0
        for category, test in latest["categories"].items():
            if not test["surge"]:
                continue
            action = domain.SURGE_ACTIONS[category]
            async with self.runtime.work() as uow:
                claimed = await insert_ignore(
                    uow.session,
                    Surge,
                    {
                        "category": category,
                        "window_start": latest["window_start"],
                        "window_end": latest["window_end"],
                        "count": test["count"],
                        "baseline": test["baseline"],
                        "p_value": test["p_value"],
                        "suggested_action": action,
                        "detected_at": self.clock.now(),
                    },
                    ["category", "window_start"],
                )
                if claimed:
                    uow.emit(
                        DemandSurge(
                            category=category,
                            count=test["count"],
                            baseline=test["baseline"],
                            window_start=latest["window_start"],
                            window_end=latest["window_end"],
                            p_value=test["p_value"],
                            suggested_action=action,
                        )
                    )
                    found += 1
        return found
