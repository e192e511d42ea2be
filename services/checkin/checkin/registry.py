"""The register: residents one by one or from the community's spreadsheet, and absences."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import date, datetime

from sqlalchemy import select

from checkin import domain
from checkin.models import Absence, Resident
from checkin.usecases import UseCases
from common.clock import day_bounds
from common.errors import Conflict, Invalid
from common.events.checkin import ResidentAway, ResidentRegistered
from common.outbox import UnitOfWork

Progress = Callable[[domain.ImportReport], Awaitable[None]]  # told the report after each chunk is saved


class Registry(UseCases):
    async def register(self, draft: domain.ResidentDraft, uow: UnitOfWork | None = None) -> Resident:
        async with self.runtime.work(uow) as uow:
            existing = (await uow.session.execute(select(Resident).where(*_at_home(draft)))).scalar_one_or_none()
            if existing:
                raise Conflict(
                    f"resident already registered as {existing.resident_id}", resident_id=existing.resident_id
                )
            resident = Resident(**_resident_row(draft, self._registered_at(draft)))
            uow.session.add(resident)
            uow.emit(_registered(resident.model_dump()))
        return resident

    async def import_residents(
        self,
        rows: Iterable[tuple[int, dict]],
        allowed_grids: set[str] | None = None,
        progress: Progress | None = None,
    ) -> domain.ImportReport:
        """Import spreadsheet rows (row number, fields). Valid rows are saved, each rejected
        row is reported with its reason, and importing the same file again changes nothing."""
        report = domain.ImportReport()
        seen: set[tuple[str, ...]] = set()
        for chunk in _chunks(rows, self.settings.import_chunk_rows):
            drafts: list[domain.ResidentDraft] = []
            for number, fields in chunk:
                report.total += 1
                if "_address_error" in fields:
                    report.reject(
                        number, f"address {fields['_address_error']!r} is not building-unit-room, e.g. B03-2-401"
                    )
                    continue
                try:
                    community_id = fields.pop("community_id", None) or self.settings.default_community_id
                    draft = domain.draft_resident(community_id=community_id, today=self.today(), **fields)
                except Invalid as exc:
                    report.reject(number, exc.message)
                    continue
                if allowed_grids is not None and draft.grid_id not in allowed_grids:
                    report.reject(number, f"grid {draft.grid_id} is not one of your grids")
                    continue
                if draft.home in seen:
                    report.reject(number, "the same resident appears earlier in this file")
                    continue
                seen.add(draft.home)
                drafts.append(draft)
            imported = await self._save_new(drafts)
            report.imported += imported
            report.unchanged += len(drafts) - imported
            if progress is not None:
                await progress(report)
        return report

    async def _save_new(self, drafts: list[domain.ResidentDraft], uow: UnitOfWork | None = None) -> int:
        if not drafts:
            return 0
        async with self.runtime.work(uow) as uow:
            table = Resident.__table__
            # Plain rows and a core INSERT: building ORM objects would cost more than the database.
            rows = [_resident_row(d, self._registered_at(d)) for d in drafts]
            result = await uow.session.execute(
                self.runtime.db.insert(table).on_conflict_do_nothing().returning(table.c.resident_id), rows
            )
            new_ids = set(result.scalars())
            for row in rows:
                if row["resident_id"] in new_ids:
                    uow.emit(_registered(row))
        return len(new_ids)

    def _registered_at(self, draft: domain.ResidentDraft) -> datetime:
        """When the register says the resident joined (local midnight), else now: a resident is
        expected to check in from the first cutoff after registration."""
        if draft.registered_on is None:
            return self.clock.now()
        return min(self.clock.now(), day_bounds(draft.registered_on, self.tz)[0])

    async def resident(self, resident_id: str) -> Resident:
        async with self.runtime.db.session() as session:
            resident = await session.get(Resident, resident_id)
        if resident is None:
            raise domain.unknown_resident(resident_id)
        return resident

    async def record_absence(
        self, resident_id: str, from_date: date, to_date: date, reason: str, by: str, uow: UnitOfWork | None = None
    ) -> Absence:
        if to_date < from_date:
            raise Invalid(f"to_date {to_date} is before from_date {from_date}")
        async with self.runtime.work(uow) as uow:
            if await uow.session.get(Resident, resident_id) is None:
                raise domain.unknown_resident(resident_id)
            absence = Absence(
                resident_id=resident_id,
                from_date=from_date,
                to_date=to_date,
                reason=reason,
                recorded_by=by,
                recorded_at=self.clock.now(),
            )
            uow.session.add(absence)
            await uow.session.flush()  # its id keys the event
            uow.emit(ResidentAway(absence_id=f"A-{absence.absence_id}", resident_id=resident_id, from_date=from_date,
                                  to_date=to_date))  # fmt: skip
        return absence


def _at_home(draft: domain.ResidentDraft) -> tuple:
    community_id, building_id, unit, room, name = draft.home
    return (
        Resident.community_id == community_id,
        Resident.building_id == building_id,
        Resident.unit == unit,
        Resident.room == room,
        Resident.name == name,
    )


def _resident_row(draft: domain.ResidentDraft, registered_at: datetime) -> dict:
    return {
        "resident_id": draft.resident_id,
        "name": draft.name,
        "phone": draft.phone,
        "community_id": draft.community_id,
        "grid_id": draft.grid_id,
        "building_id": draft.building_id,
        "unit": draft.unit,
        "room": draft.room,
        "tags": list(draft.tags),
        "lat": draft.lat,
        "lon": draft.lon,
        "household_id": draft.household_id,
        "registered_at": registered_at,
    }


def _registered(resident: dict) -> ResidentRegistered:
    return ResidentRegistered(**{k: v for k, v in resident.items() if k != "registered_at"})


def _chunks(rows: Iterable[tuple[int, dict]], size: int) -> Iterator[list[tuple[int, dict]]]:
    chunk: list[tuple[int, dict]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
