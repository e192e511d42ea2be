"""The day's deadlines: reminders before the cutoff, and the sweep of who missed it."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Date, and_, exists, func, literal, select, update
from sqlalchemy.orm import aliased

from checkin import domain
from checkin.models import Absence, DailyCheckIn, MissedCheckIn, Reminder, Resident
from checkin.settings import CheckinSettings
from checkin.usecases import UseCases
from common.clock import local_date, local_instant
from common.events.checkin import CheckInMissed
from common.notify import Notification, Notifier, NotifyFailed, Recipient
from common.outbox import UnitOfWork
from common.runtime import Runtime

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
    def __init__(self, runtime: Runtime, settings: CheckinSettings, notifier: Notifier) -> None:
        super().__init__(runtime, settings)
        self.notifier = notifier

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

    async def send_reminders(self, day: date | None = None) -> dict[str, int]:
        """Remind who has not checked in yet. Reminder rows are claimed first (unique per
        resident and date), so two replicas never remind the same person twice."""
        day = day or self.today()
        now = self.clock.now()
        async with self.runtime.work() as uow:
            pending = select(
                Resident.resident_id,
                literal(day, Date),
                literal("sms"),
                literal("pending"),
                literal(0),
                literal(now, Reminder.__table__.c.created_at.type),
            ).where(expected_on(day, self.settings), not_checked_in(day))
            await uow.session.execute(
                self.runtime.db.insert(Reminder)
                .from_select(["resident_id", "date", "channel", "status", "attempts", "created_at"], pending)
                .on_conflict_do_nothing(index_elements=["resident_id", "date"])
            )
        sent = failed = 0
        async with self.runtime.db.session() as session:
            due = (
                await session.execute(
                    select(Reminder, Resident)
                    .join(Resident, Resident.resident_id == Reminder.resident_id)
                    .where(
                        Reminder.date == day,
                        Reminder.status != "sent",
                        Reminder.attempts < self.settings.reminder_max_attempts,
                        # claimed but checked in since: no need to remind
                        ~exists().where(DailyCheckIn.resident_id == Reminder.resident_id, DailyCheckIn.date == day),
                    )
                )
            ).all()
        cutoff = self.settings.cutoff_time.strftime("%H:%M")
        for reminder, resident in due:
            channel = domain.reminder_channel(resident.tags)
            notification = Notification(
                kind="checkin_reminder",
                channel=channel,
                to=Recipient(id=resident.resident_id, name=resident.name, phone=resident.phone),
                text=f"{resident.name}，您今天还没有健康打卡，请在{cutoff}前完成。",
                idempotency_key=f"checkin_reminder:{resident.resident_id}:{day}",
                data={"date": day.isoformat(), "cutoff": cutoff},
            )
            try:
                await self.notifier.notify(notification)
                status, error = "sent", None
                sent += 1
            except NotifyFailed as exc:
                status, error = "failed", str(exc)[:500]
                failed += 1
            # Each outcome is its own transaction: a send cannot be taken back, so its record must stay.
            async with self.runtime.work() as uow:
                await uow.session.execute(
                    update(Reminder)
                    .where(Reminder.reminder_id == reminder.reminder_id)
                    .values(status=status, channel=channel, attempts=Reminder.attempts + 1, last_error=error)
                )
        return {"sent": sent, "failed": failed}

    async def remind_before_cutoff(self) -> dict[str, int] | None:
        now = self.clock.now()
        today = local_date(now, self.tz)
        if not (
            local_instant(today, self.settings.reminder_time, self.tz)
            <= now
            < local_instant(today, self.settings.cutoff_time, self.tz)
        ):
            return None
        return await self.send_reminders(today)
