"""Register imports as background jobs: the upload is answered at once, the rows are
imported by the replica that took it, and the job's row tells how far it got."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import update

from checkin import domain
from checkin.models import ImportJob
from checkin.registry import Registry
from checkin.settings import CheckinSettings
from checkin.usecases import UseCases
from common.errors import NotFound
from common.runtime import Runtime

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted (the service stopped): import the file again; rows already imported stay unchanged"


class Imports(UseCases):
    def __init__(self, runtime: Runtime, settings: CheckinSettings, registry: Registry) -> None:
        super().__init__(runtime, settings)
        self.registry = registry
        self._running: set[asyncio.Task] = set()  # held so the loop does not drop them
        self._stopping = asyncio.Event()

    async def start(
        self, filename: str, rows: Sequence[tuple[int, dict]], allowed_grids: set[str] | None, by: str
    ) -> ImportJob:
        """Record the job and import its rows in the background of this process."""
        now = self.clock.now()
        job = ImportJob(
            job_id=f"I-{uuid.uuid4().hex[:12]}",
            filename=filename[:200],
            submitted_by=by,
            rows_total=len(rows),
            created_at=now,
            updated_at=now,
        )
        async with self.runtime.work() as uow:
            uow.session.add(job)
        task = asyncio.create_task(self._run(job.job_id, rows, allowed_grids), name=f"import {job.job_id}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return job

    async def job(self, job_id: str, sub: str, is_staff: bool) -> ImportJob:
        """A job as its submitter (or staff) sees it; anyone else's is answered as unknown."""
        async with self.runtime.db.session() as session:
            job = await session.get(ImportJob, job_id)
        if job is None or not (is_staff or job.submitted_by == sub):
            raise NotFound(f"no import job {job_id!r} of yours")
        return job

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop the imports running here; each is recorded as interrupted.

        A job stops between chunks, after its last chunk committed, so no transaction is cut
        in the middle (on SQLite a cancelled commit can hold the write lock and the job's own
        "interrupted" record would then wait for it). A job that does not reach its next
        chunk within the grace period is cancelled."""
        self._stopping.set()
        running = list(self._running)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def fail_interrupted(self) -> int:
        """The periodic job: a job silent for CHECKIN_IMPORT_STALE_MINUTES lost its replica
        (a restart); it is marked failed, and importing the file again finishes it."""
        now = self.clock.now()
        async with self.runtime.work() as uow:
            result = await uow.session.execute(
                update(ImportJob)
                .where(
                    ImportJob.status.in_(("queued", "running")),
                    ImportJob.updated_at < now - timedelta(minutes=self.settings.import_stale_minutes),
                )
                .values(
                    status="failed",
                    error=INTERRUPTED,
                    updated_at=now,
                    finished_at=now,
                )
            )
        return result.rowcount or 0

    async def _run(self, job_id: str, rows: Sequence[tuple[int, dict]], allowed_grids: set[str] | None) -> None:
        await self._record(job_id, status="running")
        try:
            report = await self.registry.import_residents(
                rows, allowed_grids, progress=lambda report: self._progress(job_id, report)
            )
        except _Stopped:  # the process is stopping: say so now rather than at the stale check
            await self._record(job_id, status="failed", error=INTERRUPTED, finished_at=self.clock.now())
            return
        except asyncio.CancelledError:
            await self._record(job_id, status="failed", error=INTERRUPTED, finished_at=self.clock.now())
            raise
        except Exception as exc:
            log.exception("import %s failed", job_id)
            await self._record(job_id, status="failed", error=str(exc)[:500], finished_at=self.clock.now())
            return
        await self._record(job_id, status="done", **_counts(report), finished_at=self.clock.now())

    async def _progress(self, job_id: str, report: domain.ImportReport) -> None:
        await self._record(job_id, **_counts(report))
        if self._stopping.is_set():
            raise _Stopped

    async def _record(self, job_id: str, **values) -> None:
        async with self.runtime.work() as uow:
            await uow.session.execute(
                update(ImportJob).where(ImportJob.job_id == job_id).values(**values, updated_at=self.clock.now())
            )


class _Stopped(Exception):
    """Raised between chunks of an import when the process is stopping."""


def _counts(report: domain.ImportReport) -> dict:
    return {
        "rows_done": report.total,
        "imported": report.imported,
        "unchanged": report.unchanged,
        "rejected": list(report.rejected),
    }
