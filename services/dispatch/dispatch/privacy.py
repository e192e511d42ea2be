"""Dispatch's part of privacy (docs/privacy.md): erasing a resident when check-in says so
(`ResidentErased`), and the retention job.

An erased resident's requests stay (category, status, volunteer and times are the record
the time bank and the figures rest on), stripped of everything about the person: details,
notes, coordinates, and their line on delivery-run sheets (name, phone, unit, room, items);
their green-channel refills stop, and the copy of the resident is deleted.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from common import retention
from common.events.checkin import ResidentErased
from common.events.dispatch import ResidentErasedByDispatch
from common.outbox import UnitOfWork, delete_sent
from common.runtime import Runtime
from dispatch.models import DeliveryRun, KnownResident, OverdueNotice, Recurrence, RequestHistory, ServiceRequest
from dispatch.settings import DispatchSettings

CLOSED = ("fulfilled", "cancelled")
# What a stop sheet says of the person: blanked on an erased resident's stops.
PERSONAL_STOP_FIELDS = ("name", "phone", "unit", "room", "details", "items", "lat", "lon")


class Privacy:
    def __init__(self, runtime: Runtime, settings: DispatchSettings) -> None:
        self.runtime = runtime
        self.settings = settings

    async def erase_resident(self, event: ResidentErased, uow: UnitOfWork | None = None) -> dict[str, int]:
        async with self.runtime.work(uow) as uow:
            session = uow.session
            await session.flush()
            mine = ServiceRequest.resident_id == event.resident_id
            requests = (
                await session.execute(select(ServiceRequest.request_id, ServiceRequest.run_id).where(mine))
            ).all()
            ids = [request_id for request_id, _ in requests]
            records = {"requests": 0}
            if ids:
                stripped = await session.execute(
                    update(ServiceRequest).where(mine).values(details=None, note=None, lat=None, lon=None)
                    .execution_options(synchronize_session=False)
                )  # fmt: skip
                records["requests"] = stripped.rowcount or 0
                # Items of open requests stay until they close: supplies releases stock by them.
                await session.execute(
                    update(ServiceRequest).where(mine, ServiceRequest.status.in_(CLOSED)).values(items=[])
                    .execution_options(synchronize_session=False)
                )  # fmt: skip
                await session.execute(
                    update(RequestHistory).where(RequestHistory.request_id.in_(ids)).values(note=None)
                )
            records["run_stops"] = await _blank_stops(session, {run_id for _, run_id in requests if run_id}, set(ids))
            records["recurrences"] = (
                await session.execute(
                    update(Recurrence).where(Recurrence.resident_id == event.resident_id)
                    .values(active=False, details=None, items=[]).execution_options(synchronize_session=False)
                )
            ).rowcount or 0  # fmt: skip
            records["residents"] = (
                await session.execute(delete(KnownResident).where(KnownResident.resident_id == event.resident_id))
            ).rowcount or 0
            records["outbox_events"] = await delete_sent(session, ids)
            session.expire_all()
            uow.emit(ResidentErasedByDispatch(erasure_id=event.erasure_id, erased_at=self.runtime.clock.now(),
                                              records=records))  # fmt: skip
        retention.report(self.runtime.registry, "dispatch", "erasure", {}, records)
        return records

    async def apply_retention(self) -> dict[str, dict[str, int]]:
        """Requests fulfilled or cancelled more than DISPATCH_RETENTION_CLOSED_REQUEST_DAYS
        ago, with their history and overdue notices, and delivery runs whose slot ended that
        long ago: deleted."""
        deleted: dict[str, int] = {}
        before = retention.cutoff(self.runtime.clock.now(), self.settings.retention_closed_request_days)
        if before is None:
            return retention.report(self.runtime.registry, "dispatch", "retention", deleted, {})
        async with self.runtime.db.session() as session:
            old = select(ServiceRequest.request_id).where(
                ServiceRequest.status.in_(CLOSED), ServiceRequest.updated_at < before
            )
            ids = list((await session.execute(old)).scalars())
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                for kind, model in (("request_history", RequestHistory), ("overdue_notices", OverdueNotice),
                                    ("requests", ServiceRequest)):  # fmt: skip
                    removed = (await session.execute(delete(model).where(model.request_id.in_(chunk)))).rowcount or 0
                    deleted[kind] = deleted.get(kind, 0) + removed
            runs = delete(DeliveryRun).where(DeliveryRun.slot_end < before)
            deleted["delivery_runs"] = (await session.execute(runs)).rowcount or 0
            await session.commit()
        return retention.report(self.runtime.registry, "dispatch", "retention", deleted, {})


async def _blank_stops(session, run_ids: set[str], request_ids: set[str]) -> int:
    """Blank the person's fields on the stops of their requests in these runs; how many stops."""
    blanked = 0
    for run in (await session.execute(select(DeliveryRun).where(DeliveryRun.run_id.in_(run_ids)))).scalars():
        stops = []
        for stop in run.stops:
            if stop.get("request_id") in request_ids:
                stop = {**stop, **dict.fromkeys(PERSONAL_STOP_FIELDS)}
                blanked += 1
            stops.append(stop)
        run.stops = stops
    await session.flush()
    return blanked
