"""The green channel: a chronic patient's medicine, raised again before each refill is due."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from common.errors import Invalid
from common.events.dispatch import ItemLine
from dispatch import domain
from dispatch.models import KnownResident, Recurrence, ServiceRequest
from dispatch.requests import NAMESPACE, Requests, merge_lines


class Recurrences(Requests):
    async def add_recurrence(
        self,
        actor: domain.Actor,
        resident_id: str,
        items: Sequence[ItemLine],
        details: str | None,
        every_days: int,
        first_due: datetime,
        lead_days: int | None,
    ) -> Recurrence:
        """Its own transaction, committed before the refills it makes due are raised."""
        if not 1 <= every_days <= 180:
            raise Invalid(f"every_days {every_days} must be between 1 and 180")
        lead = self.settings.refill_lead_days if lead_days is None else lead_days
        if not 0 <= lead < every_days + 1:
            raise Invalid(f"lead_days {lead} must be between 0 and every_days")
        if first_due.tzinfo is None:
            raise Invalid("first_due needs a time zone offset")
        async with self.runtime.work() as uow:
            resident = await self._resident(uow, resident_id)
            domain.source_for(actor, resident_id, resident.grid_id, resident.building_id)
            if "chronic" not in resident.tags:
                raise Invalid(f"the green channel is for chronic patients; {resident_id} is not tagged chronic")
            recurrence = Recurrence(
                recurrence_id="GC-" + uuid.uuid4().hex[:12],
                resident_id=resident_id,
                details=details,
                items=[line.model_dump() for line in merge_lines(items)],
                every_days=every_days,
                lead_days=lead,
                next_due=first_due,
                created_by=actor.sub,
                created_at=self.clock.now(),
            )
            uow.session.add(recurrence)
        await self.raise_refills()
        return recurrence

    async def raise_refills(self) -> int:
        """The job: raise each refill `lead_days` before it is due, with raised priority.
        The request id comes from (recurrence, due date), so replicas raise it once."""
        now = self.clock.now()
        async with self.runtime.db.session() as session:
            ids = (
                (await session.execute(select(Recurrence.recurrence_id).where(Recurrence.active.is_(True))))
                .scalars()
                .all()
            )
        raised = 0
        for recurrence_id in ids:
            async with self.runtime.work() as uow:
                recurrence = await uow.get_for_update(Recurrence, recurrence_id)
                dues = domain.next_refills(
                    recurrence.next_due, recurrence.every_days, timedelta(days=recurrence.lead_days), now
                )
                if not dues:
                    continue
                resident = await uow.session.get(KnownResident, recurrence.resident_id)
                for due in dues:
                    request_id = "RQ-" + uuid.uuid5(NAMESPACE, f"{recurrence_id}|{due.isoformat()}").hex[:16]
                    if resident is None or await uow.session.get(ServiceRequest, request_id) is not None:
                        continue
                    priority = domain.raise_priority(domain.priority_for("medicine", resident.tags))
                    await self._raise(
                        uow,
                        resident,
                        "medicine",
                        recurrence.details or "green channel refill",
                        [ItemLine(**i) for i in recurrence.items],
                        None,
                        source="green_channel",
                        raised_by="green-channel",
                        request_id=request_id,
                        priority=priority,
                        due=max(due, now + timedelta(hours=domain.SLA_HOURS[priority])),
                        recurrence_id=recurrence_id,
                    )
                    raised += 1
                recurrence.next_due = dues[-1] + timedelta(days=recurrence.every_days)
        return raised

    async def recurrences(self, resident_id: str) -> list[Recurrence]:
        async with self.runtime.db.session() as session:
            rows = await session.execute(select(Recurrence).where(Recurrence.resident_id == resident_id))
            return list(rows.scalars().all())
