"""Erasing a resident (docs/privacy.md): the register owns them, so the erasure starts here.

`erase` removes all check-in holds of the person in one transaction, keeps a record of the
erasure (the id, when, by whom, counts), emits `ResidentErased` on the registry topic and a
tombstone for the resident's key; every service holding the person's data erases its own
copy and confirms (`ResidentErasedBy<Service>`), which `confirmed` records here, so that
`status` tells an admin who has confirmed and who not yet.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select

from checkin import domain
from checkin.models import (
    Absence,
    CheckInSubmission,
    DailyCheckIn,
    ErasureConfirmation,
    IdempotencyKey,
    MissedCheckIn,
    Resident,
    ResidentErasure,
    Sample,
)
from checkin.usecases import UseCases
from common import retention
from common.events.checkin import ResidentErased
from common.events.erasure import ResidentErasureConfirmed
from common.outbox import UnitOfWork, delete_sent
from common.topics import CHECKIN_RESIDENTS

# The resident's rows in each table, by kind of record (the figures of the erasure).
_HELD = (
    ("checkins", DailyCheckIn),
    ("checkin_history", CheckInSubmission),
    ("missed_checkins", MissedCheckIn),
    ("absences", Absence),
    ("samples", Sample),
)


class Erasures(UseCases):
    async def erase(self, resident_id: str, by: str, uow: UnitOfWork | None = None) -> dict:
        """Erase a resident. Asked again, the same erasure: published once more while some
        service has not confirmed it (one that was down past the registry's compaction hears
        it then), nothing once all have."""
        async with self.runtime.work(uow) as uow:
            session = uow.session
            if (erasure := await session.get(ResidentErasure, resident_id)) is not None:
                if not await self._all_confirmed(session, erasure.erasure_id):
                    uow.emit(ResidentErased(resident_id=resident_id, erasure_id=erasure.erasure_id,
                                            requested_at=erasure.requested_at))  # fmt: skip
                    uow.tombstone(CHECKIN_RESIDENTS, resident_id)
            else:
                resident = await uow.get_for_update(Resident, resident_id)
                if resident is None:
                    raise domain.unknown_resident(resident_id)
                records = {kind: await _delete(session, model, resident_id) for kind, model in _HELD}
                records["idempotency_keys"] = await self._forget_answers(session, resident_id)
                records["outbox_events"] = await delete_sent(session, [resident_id])
                await session.delete(resident)
                records["residents"] = 1
                now = self.clock.now()
                erasure = ResidentErasure(resident_id=resident_id, erasure_id=f"E-{uuid.uuid4().hex[:16]}",
                                          requested_by=by, requested_at=now, records=records)  # fmt: skip
                session.add(erasure)
                uow.emit(ResidentErased(resident_id=resident_id, erasure_id=erasure.erasure_id, requested_at=now))
                uow.tombstone(CHECKIN_RESIDENTS, resident_id)
                retention.report(self.runtime.registry, "checkin", "erasure", records, {})
        return await self.status(resident_id)

    async def _all_confirmed(self, session, erasure_id: str) -> bool:
        query = select(ErasureConfirmation.service).where(ErasureConfirmation.erasure_id == erasure_id)
        return set(self.settings.erasure_confirmers) <= set((await session.execute(query)).scalars())

    async def _forget_answers(self, session, resident_id: str) -> int:
        """Idempotency keys whose kept answer is this resident's check-in (a day's worth at most)."""
        keys = [
            (row.caller, row.key)
            for row in (await session.execute(select(IdempotencyKey.caller, IdempotencyKey.key, IdempotencyKey.answer)))
            if isinstance(row.answer, dict) and row.answer.get("resident_id") == resident_id
        ]
        for caller, key in keys:
            await session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.caller == caller, IdempotencyKey.key == key)
            )
        return len(keys)

    async def status(self, resident_id: str) -> dict:
        """The erasure of a resident and who has confirmed it; 404 as for any unknown resident."""
        async with self.runtime.db.session() as session:
            erasure = await session.get(ResidentErasure, resident_id)
            if erasure is None:
                raise domain.unknown_resident(resident_id)
            confirmations = {
                c.service: c
                for c in (
                    await session.execute(
                        select(ErasureConfirmation).where(ErasureConfirmation.erasure_id == erasure.erasure_id)
                    )
                ).scalars()
            }
        expected = list(dict.fromkeys([*self.settings.erasure_confirmers, *sorted(confirmations)]))
        services = [
            {"service": "checkin", "confirmed": True, "erased_at": erasure.requested_at, "records": erasure.records}
        ]
        for service in expected:
            c = confirmations.get(service)
            services.append({"service": service, "confirmed": c is not None,
                             "erased_at": c.erased_at if c else None, "records": c.records if c else {}})  # fmt: skip
        return {
            "resident_id": resident_id,
            "erasure_id": erasure.erasure_id,
            "requested_by": erasure.requested_by,
            "requested_at": erasure.requested_at,
            "complete": all(s["confirmed"] for s in services),
            "services": services,
        }

    async def confirmed(self, service: str, event: ResidentErasureConfirmed, uow: UnitOfWork) -> None:
        """A service confirmed an erasure (an unknown erasure id is recorded too: harmless, and
        an erasure asked on another replica's database is never unknown in one register)."""
        async with self.runtime.work(uow) as uow:
            key = (event.erasure_id, service)
            if await uow.session.get(ErasureConfirmation, key) is None:
                uow.session.add(ErasureConfirmation(erasure_id=event.erasure_id, service=service, erased_at=event.erased_at,
                                                    records=dict(event.records), received_at=self.clock.now()))  # fmt: skip


async def _delete(session, model, resident_id: str) -> int:
    result = await session.execute(delete(model).where(model.resident_id == resident_id))
    return result.rowcount or 0
