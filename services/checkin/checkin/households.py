"""Households: everyone registered at one building-unit-room unless the register says
otherwise, with today's check-in status.

A household's id names its home, `H.<building_id>.<unit>.<room>`, or the register's own
household, `H.<building_id>.<label>` (domain.household_of). The portal's household sign-in
codes and the building lead's page read households from here; the check-in service owns
the register, so it is the one that knows who lives together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from checkin import domain
from checkin.models import Absence, DailyCheckIn, Resident
from common.auth import Principal, Role
from common.errors import Forbidden, Invalid, NotFound
from common.runtime import Runtime

PREFIX = domain.HOUSEHOLD_PREFIX
# Today's status of a member, as a building lead may see it: no temperature or symptom.
CHECKED_IN, NEEDS_ATTENTION, MISSING, AWAY = "checked_in", "needs_attention", "missing", "away"


def household_id_of(resident: Resident) -> str:
    return resident.household_id or domain.household_of(resident.building_id, resident.unit, resident.room)


def member_status(checkin: DailyCheckIn | None, away: bool) -> str:
    if checkin is not None:
        return NEEDS_ATTENTION if checkin.anomaly else CHECKED_IN
    return AWAY if away else MISSING


@dataclass(frozen=True)
class Households:
    runtime: Runtime

    async def resolve(self, household_or_resident_id: str) -> str:
        """A household id as it is, or the household of a resident."""
        if household_or_resident_id.startswith(PREFIX):
            return household_or_resident_id
        async with self.runtime.db.session() as session:
            resident = await session.get(Resident, household_or_resident_id)
        if resident is None:
            raise NotFound(f"no household or resident {household_or_resident_id!r}")
        return household_id_of(resident)

    async def household(self, user: Principal, household_id: str, day: date) -> dict:
        if not household_id.startswith(PREFIX) or household_id.count(".") < 2:
            raise Invalid(
                f"{household_id!r} is not a household id (H.<building>.<unit>.<room> or H.<building>.<label>)"
            )
        households = await self._read(day, Resident.household_id == household_id)
        if not households:
            raise NotFound(f"no household {household_id!r}")
        household = households[0]
        ensure_may_see(user, household)
        return _shape(household, day, health=user.household_id == household_id or user.is_staff)

    async def in_building(self, user: Principal, building_id: str, day: date) -> dict:
        households = await self._read(day, Resident.building_id == building_id)
        for household in households:
            ensure_may_see(user, household)
        if not households and not (user.is_staff or user.can_act_for_building(building_id)):
            raise Forbidden(f"you may not see building {building_id}")
        shaped = [_shape(h, day, health=user.is_staff) for h in households]
        members = [m for h in shaped for m in h["members"]]
        return {
            "building_id": building_id,
            "date": day,
            "households": shaped,
            "expected": sum(1 for m in members if m["status"] != AWAY),
            "checked_in": sum(1 for m in members if m["status"] in (CHECKED_IN, NEEDS_ATTENTION)),
        }

    async def _read(self, day: date, *where) -> list[_Household]:
        async with self.runtime.db.session() as session:
            residents = (
                (
                    await session.execute(
                        select(Resident).where(*where).order_by(Resident.unit, Resident.room, Resident.name)
                    )
                )
                .scalars()
                .all()
            )
            ids = [r.resident_id for r in residents]
            checkins = (
                {
                    c.resident_id: c
                    for c in (
                        await session.execute(
                            select(DailyCheckIn).where(DailyCheckIn.resident_id.in_(ids), DailyCheckIn.date == day)
                        )
                    ).scalars()
                }
                if ids
                else {}
            )
            away = (
                set(
                    (
                        await session.execute(
                            select(Absence.resident_id).where(
                                Absence.resident_id.in_(ids), Absence.from_date <= day, Absence.to_date >= day
                            )
                        )
                    ).scalars()
                )
                if ids
                else set()
            )
        households: dict[str, _Household] = {}
        for resident in residents:
            hid = household_id_of(resident)
            household = households.setdefault(
                hid, _Household(hid, resident.building_id, resident.unit, resident.room, resident.grid_id, [])
            )
            household.members.append((resident, checkins.get(resident.resident_id), resident.resident_id in away))
        return list(households.values())


@dataclass
class _Household:
    household_id: str
    building_id: str
    unit: str
    room: str
    grid_id: str
    members: list[tuple[Resident, DailyCheckIn | None, bool]]


def ensure_may_see(user: Principal, household: _Household) -> None:
    """The household's own session, the building's lead, the grid's worker, staff."""
    allowed = (
        user.household_id == household.household_id
        or user.can_act_for_building(household.building_id)
        or user.can_see_grid(household.grid_id)
    )
    if not allowed:
        raise Forbidden("you may not see this household")
    if user.role not in (Role.resident, Role.building_lead, Role.grid_worker) and not user.is_staff:
        raise Forbidden(f"role {user.role.value!r} may not see households")


def _shape(household: _Household, day: date, *, health: bool) -> dict:
    members = []
    for resident, checkin, away in household.members:
        member = {
            "resident_id": resident.resident_id,
            "name": resident.name,
            "status": member_status(checkin, away),
            "checked_in_at": checkin.submitted_at if checkin else None,
            "channel": checkin.channel if checkin else None,
        }
        if health and checkin is not None:  # the household itself and staff; never a neighbour
            member["temperature_c"] = checkin.temperature_c
            member["symptoms"] = checkin.symptoms
        members.append(member)
    return {
        "household_id": household.household_id,
        "building_id": household.building_id,
        "unit": household.unit,
        "room": household.room,
        "grid_id": household.grid_id,
        "date": day,
        "members": members,
    }
