"""The check-in retention job: check-ins and everything about them (history, misses,
absences, samples) older than `CHECKIN_RETENTION_CHECKIN_DAYS`, import reports older than
`CHECKIN_RETENTION_IMPORT_DAYS` and access-log rows older than
`CHECKIN_RETENTION_ACCESS_LOG_DAYS` are deleted. Idempotent: several replicas may run it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from checkin.models import Absence, CheckInSubmission, DailyCheckIn, ImportJob, MissedCheckIn, Sample
from checkin.usecases import UseCases
from common import retention
from common.accesslog import AccessLogEntry


class Retention(UseCases):
    async def apply(self) -> dict[str, dict[str, int]]:
        now = self.clock.now()
        deleted: dict[str, int] = {}
        async with self.runtime.db.session() as session:
            if self.settings.retention_checkin_days > 0:
                # By local date: a check-in of the first day kept stays whole days.
                first_kept = self.today() - timedelta(days=int(self.settings.retention_checkin_days))
                for kind, due in (
                    ("checkins", delete(DailyCheckIn).where(DailyCheckIn.date < first_kept)),
                    ("checkin_history", delete(CheckInSubmission).where(CheckInSubmission.date < first_kept)),
                    ("missed_checkins", delete(MissedCheckIn).where(MissedCheckIn.date < first_kept)),
                    ("absences", delete(Absence).where(Absence.to_date < first_kept)),
                    (
                        "samples",
                        delete(Sample).where(
                            Sample.sampled_at < retention.cutoff(now, self.settings.retention_checkin_days)
                        ),
                    ),
                ):
                    deleted[kind] = (await session.execute(due)).rowcount or 0
            if before := retention.cutoff(now, self.settings.retention_import_days):
                due = delete(ImportJob).where(ImportJob.finished_at.is_not(None), ImportJob.finished_at < before)
                deleted["import_jobs"] = (await session.execute(due)).rowcount or 0
            if before := retention.cutoff(now, self.settings.retention_access_log_days):
                deleted["access_log"] = (
                    await session.execute(delete(AccessLogEntry).where(AccessLogEntry.at < before))
                ).rowcount or 0
            await session.commit()
        return retention.report(self.runtime.registry, "checkin", "retention", deleted, {})
