"""Check-in figures for Prometheus (`firstline_checkin_...`), computed from this service's
database by a periodic refresh, never in the hot path. Labels are grids, buildings,
channels and sampling rounds: bounded; never a resident.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Histogram
from sqlalchemy import func, select

from checkin.models import DailyCheckIn, MissedCheckIn, Resident, SamplingLag, SamplingRound
from checkin.service import CheckinService
from common.clock import local_instant
from common.metrics import DomainMetrics, Family, Values
from common.runtime import Runtime

REFRESH_INTERVAL_S = 10.0
SAMPLING_ROUNDS_SHOWN_DAYS = 3  # rounds whose deadline passed longer ago leave the dashboards

GRID_BUILDING = ("grid_id", "building_id")


class CheckinMetrics:
    def __init__(self, runtime: Runtime, service: CheckinService) -> None:
        self.runtime = runtime
        self.service = service
        m = self.domain = DomainMetrics(runtime.registry, "checkin")
        self.batch_size = Histogram(
            "firstline_checkin_write_batch_size",
            "Check-ins written per transaction: concurrent check-ins share one (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=runtime.registry,
        )
        service.observe_check_in_batch = self.batch_size.observe
        self.expected = m.gauge(
            "firstline_checkin_expected_residents",
            "Residents expected to check in today (registered, not away)",
            GRID_BUILDING,
        )
        self.checked_in = m.gauge(
            "firstline_checkin_checked_in_residents", "Residents who checked in today", GRID_BUILDING
        )
        self.building_rate = m.gauge(
            "firstline_checkin_building_completion_ratio",
            "Today's check-in completion, per building (0-1)",
            GRID_BUILDING,
        )
        self.grid_rate = m.gauge(
            "firstline_checkin_grid_completion_ratio", "Today's check-in completion, per grid (0-1)", ("grid_id",)
        )
        self.since_cutoff = m.gauge(
            "firstline_checkin_seconds_since_cutoff",
            "Seconds since today's local check-in cutoff (negative before it)",
        )
        self.missed = m.gauge(
            "firstline_checkin_missed_residents", "Residents found missing by today's cutoff sweep", ("grid_id",)
        )
        self.anomalies = m.gauge(
            "firstline_checkin_anomalies", "Today's check-ins with fever or symptoms", ("grid_id", "kind")
        )
        self.by_channel = m.gauge("firstline_checkin_checkins_by_channel", "Today's check-ins by channel", ("channel",))
        self.followups_map = m.gauge(
            "firstline_checkin_building_followups",
            "Today's follow-ups per building (missed + fever or symptoms), with the building's coordinates: the heat map",
            ("grid_id", "building_id", "lat", "lon"),
        )
        self.sampling_rate = m.gauge(
            "firstline_checkin_sampling_completion_ratio",
            "Sampling (核酸) completion per recent round and building (0-1)",
            ("round_id", "building_id"),
        )
        self.sampling_lagging = m.gauge(
            "firstline_checkin_sampling_lagging_buildings",
            "Buildings found lagging at a recent round's deadline",
            ("round_id",),
        )

    def schedule(self) -> None:
        self.runtime.every("metrics", self.refresh, interval_s=REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        await self.domain.refresh(self.compute)

    async def compute(self) -> dict[Family, Values]:
        service, settings = self.service, self.service.settings
        now = service.clock.now()
        today = service.today()
        buildings = await service.completion(today, "building", None)
        grids = await service.completion(today, "grid", None)
        figures: dict[Family, Values] = {
            self.expected: {(b["grid_id"], b["building_id"]): b["expected"] for b in buildings},
            self.checked_in: {(b["grid_id"], b["building_id"]): b["checked_in"] for b in buildings},
            self.building_rate: {(b["grid_id"], b["building_id"]): b["rate"] for b in buildings},
            self.grid_rate: {(g["grid_id"],): g["rate"] for g in grids},
            self.since_cutoff: (now - local_instant(today, settings.cutoff_time, settings.tz)).total_seconds(),
        }
        async with self.runtime.db.session() as session:
            missed = {
                (grid, building): count
                for grid, building, count in await session.execute(
                    select(MissedCheckIn.grid_id, MissedCheckIn.building_id, func.count())
                    .where(MissedCheckIn.date == today)
                    .group_by(MissedCheckIn.grid_id, MissedCheckIn.building_id)
                )
            }
            unwell = (
                await session.execute(
                    select(Resident.grid_id, Resident.building_id, DailyCheckIn.fever, func.count())
                    .join(Resident, Resident.resident_id == DailyCheckIn.resident_id)
                    .where(DailyCheckIn.date == today, DailyCheckIn.anomaly)
                    .group_by(Resident.grid_id, Resident.building_id, DailyCheckIn.fever)
                )
            ).all()
            channels = (
                await session.execute(
                    select(DailyCheckIn.channel, func.count())
                    .where(DailyCheckIn.date == today)
                    .group_by(DailyCheckIn.channel)
                )
            ).all()
            places = (
                await session.execute(
                    select(Resident.grid_id, Resident.building_id, func.avg(Resident.lat), func.avg(Resident.lon))
                    .where(Resident.lat.is_not(None), Resident.lon.is_not(None))
                    .group_by(Resident.grid_id, Resident.building_id)
                )
            ).all()
            rounds = (
                (
                    await session.execute(
                        select(SamplingRound).where(
                            SamplingRound.deadline >= now - timedelta(days=SAMPLING_ROUNDS_SHOWN_DAYS)
                        )
                    )
                )
                .scalars()
                .all()
            )
            lagging = dict(
                (
                    await session.execute(
                        select(SamplingLag.round_id, func.count())
                        .where(SamplingLag.round_id.in_([r.round_id for r in rounds]))
                        .group_by(SamplingLag.round_id)
                    )
                ).all()
            )

        missed_by_grid: dict[tuple[str], float] = {}
        for (grid, _building), count in missed.items():
            missed_by_grid[(grid,)] = missed_by_grid.get((grid,), 0) + count
        for g in grids:  # every grid has a series, 0 before the sweep: "no one missed" is a figure too
            missed_by_grid.setdefault((g["grid_id"],), 0)
        anomalies: dict[tuple[str, str], float] = {
            (g["grid_id"], k): 0 for g in grids for k in ("fever", "symptoms_only")
        }
        followups = dict(missed)
        for grid, building, fever, count in unwell:
            key = (grid, "fever" if fever else "symptoms_only")
            anomalies[key] = anomalies.get(key, 0) + count
            followups[(grid, building)] = followups.get((grid, building), 0) + count
        figures[self.missed] = missed_by_grid
        figures[self.anomalies] = anomalies
        figures[self.by_channel] = {(channel,): count for channel, count in channels}
        figures[self.followups_map] = {
            (grid, building, f"{lat:.5f}", f"{lon:.5f}"): followups.get((grid, building), 0)
            for grid, building, lat, lon in places
        }
        sampling: dict[tuple[str, str], float] = {}
        for sampling_round in rounds:
            status = await service.round_status(sampling_round.round_id)
            for b in status["buildings"]:
                sampling[(sampling_round.round_id, b["building_id"])] = b["rate"]
        figures[self.sampling_rate] = sampling
        figures[self.sampling_lagging] = {(r.round_id,): lagging.get(r.round_id, 0) for r in rounds}
        return figures
