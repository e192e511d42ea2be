"""The day's deadline: the sweep of who missed the check-in cutoff."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Date, and_, exists, func, literal, select
from sqlalchemy.orm import aliased

from checkin import domain
from checkin.models import Absence, DailyCheckIn, MissedCheckIn, Resident
from checkin.settings import CheckinSettings
from checkin.usecases import UseCases
from common.clock import local_date, local_instant
from common.events.checkin import CheckInMissed
from common.outbox import UnitOfWork

log = logging.getLogger(__name__)
SWEEP_FLUSH_EVERY = 5000  # staged CheckInMissed written in chunks: a sweep may find tens of thousands


@dataclass(frozen=True)
class SweepResult:
    date: date
    missed: int  # newly found by this sweep (0 when run again)
    total_missed: int  # all missed records for the date


def expected_on(day: date, settings: CheckinSettings):
    """Residents expected to check in on `day`: registered before its cutoff, not away."""
    return and_(
        Resident.registered_at < local_instant(day, settings.cutoff_time, settings.tz),
        ~exists().where(Absence.resident_id == Resident.resident_id, Absence.from_date <= day, Absence.to_date >= day),
    )


def not_checked_in(day: date):
    return ~exists().where(DailyCheckIn.resident_id == Resident.resident_id, DailyCheckIn.date == day)


class Sweeps(UseCases):
    async def sweep(self, day: date, uow: UnitOfWork | None = None) -> SweepResult:
        """Find who missed `day`'s check-in and emit one CheckInMissed each: a single
        set-based INSERT ... SELECT; the unique (resident, date) makes a second run, or a
        second replica, find nobody new."""
        day = domain.check_sweep_date(day, self.today())
        sweep_id = uuid.uuid4().hex
        async with self.runtime.work(uow) as uow:
            previous = aliased(MissedCheckIn)
            candidates = (
                select(
                    Resident.resident_id,
                    literal(day, Date),
                    func.coalesce(previous.consecutive_days, 0) + 1,
                    Resident.grid_id,
                    Resident.building_id,
                    literal(self.clock.now(), MissedCheckIn.__table__.c.detected_at.type),
                    literal(sweep_id),
                )
                .select_from(Resident)
                .outerjoin(
                    previous,
                    and_(previous.resident_id == Resident.resident_id, previous.date == day - timedelta(days=1)),
                )
                .where(expected_on(day, self.settings), not_checked_in(day))
            )
            columns = ["resident_id", "date", "consecutive_days", "grid_id", "building_id", "detected_at", "sweep_id"]
            await uow.session.execute(
                self.runtime.db.insert(MissedCheckIn)
                .from_select(columns, candidates)
                .on_conflict_do_nothing(index_elements=["resident_id", "date"])
            )
            found = await uow.session.execute(
                select(
                    MissedCheckIn.resident_id,
                    MissedCheckIn.consecutive_days,
                    MissedCheckIn.grid_id,
                    MissedCheckIn.building_id,
                    Resident.community_id,
                    Resident.tags,
                )
                .join(Resident, Resident.resident_id == MissedCheckIn.resident_id)
                .where(MissedCheckIn.sweep_id == sweep_id)
            )
            missed = 0
            for row in found:
                uow.emit(
                    CheckInMissed(
                        resident_id=row.resident_id,
                        date=day,
                        consecutive_days=row.consecutive_days,
                        grid_id=row.grid_id,
                        building_id=row.building_id,
                        community_id=row.community_id,
                        tags=row.tags,
                    )
                )
                missed += 1
                if missed % SWEEP_FLUSH_EVERY == 0:
                    await uow.flush()
            total = await uow.session.scalar(select(func.count()).where(MissedCheckIn.date == day))
        log.info("sweep %s: %d newly missed, %d in all", day, missed, total)
        return SweepResult(date=day, missed=missed, total_missed=total or 0)

    async def sweep_at_cutoff(self) -> SweepResult | None:
        """The periodic job: in the window after the local cutoff, sweep today (idempotent;
        repeated runs and replicas find nobody new). Residents registered later in the day
        are not swept by the job: staff can still sweep by hand."""
        now = self.clock.now()
        today = local_date(now, self.tz)
        cutoff = local_instant(today, self.settings.cutoff_time, self.tz)
        if not cutoff <= now < cutoff + timedelta(minutes=self.settings.sweep_window_minutes):
            return None
        return await self.sweep(today)
