"""What grid workers, building leads and staff read: follow-up lists and completion."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Literal

from sqlalchemy import and_, exists, func, literal, or_, select

from checkin import domain
from checkin.models import DailyCheckIn, MissedCheckIn, Resident
from checkin.sweeps import expected_on
from checkin.usecases import UseCases
from common.errors import NotFound


class Reading(UseCases):
    def buildings_of_lead(self, own: Collection[str], asked: str | None) -> list[str]:
        """A building lead's buildings, or the one asked for: another building is answered as
        an unknown one, so the answer says nothing of buildings that are not theirs."""
        if asked is None:
            return list(own)
        if asked not in own:
            raise NotFound(f"no building {asked!r} among yours")
        return [asked]

    async def followups(
        self, day: date, *, grid_ids: list[str] | None = None, building_ids: list[str] | None = None
    ) -> list[dict]:
        """Who needs a call on `day` in these grids (or buildings): fever or symptoms first,
        then most consecutive misses, then special-population tags, with what the worker
        needs to act."""
        if grid_ids is not None:
            missed_in, resident_in = MissedCheckIn.grid_id.in_(grid_ids), Resident.grid_id.in_(grid_ids)
        else:
            missed_in, resident_in = MissedCheckIn.building_id.in_(building_ids), Resident.building_id.in_(building_ids)
        async with self.runtime.db.session() as session:
            missed = {  # missed at the cutoff and still not checked in (a late check-in needs no call)
                row.resident_id: row.consecutive_days
                for row in await session.execute(
                    select(MissedCheckIn.resident_id, MissedCheckIn.consecutive_days).where(
                        MissedCheckIn.date == day,
                        missed_in,
                        ~exists().where(
                            DailyCheckIn.resident_id == MissedCheckIn.resident_id, DailyCheckIn.date == day
                        ),
                    )
                )
            }
            anomalies = {
                row.resident_id: row
                for row in (
                    await session.execute(
                        select(DailyCheckIn)
                        .join(Resident, Resident.resident_id == DailyCheckIn.resident_id)
                        .where(DailyCheckIn.date == day, DailyCheckIn.anomaly, resident_in)
                    )
                ).scalars()
            }
            ids = set(missed) | set(anomalies)
            if not ids:
                return []
            residents = {
                r.resident_id: r
                for r in (await session.execute(select(Resident).where(Resident.resident_id.in_(ids)))).scalars()
            }
            latest = (
                select(DailyCheckIn.resident_id, func.max(DailyCheckIn.date).label("day"))
                .where(DailyCheckIn.resident_id.in_(ids), DailyCheckIn.date <= day)
                .group_by(DailyCheckIn.resident_id)
                .subquery()
            )
            last = {
                c.resident_id: c
                for c in (
                    await session.execute(
                        select(DailyCheckIn).join(
                            latest,
                            and_(latest.c.resident_id == DailyCheckIn.resident_id, latest.c.day == DailyCheckIn.date),
                        )
                    )
                ).scalars()
            }
        items = []
        for resident_id in ids:
            resident = residents[resident_id]
            anomaly = anomalies.get(resident_id)
            previous = last.get(resident_id)
            reasons = []
            if anomaly is not None:
                if anomaly.fever:
                    reasons.append(f"fever {anomaly.temperature_c:.1f}°C")
                reasons.extend(anomaly.symptoms)
            if resident_id in missed:
                reasons.append(f"missed check-in ({missed[resident_id]} day{'s' if missed[resident_id] > 1 else ''})")
            items.append(
                {
                    "resident_id": resident_id,
                    "name": resident.name,
                    "phone": resident.phone,
                    "grid_id": resident.grid_id,
                    "building_id": resident.building_id,
                    "address": f"{resident.building_id}-{resident.unit}-{resident.room}",
                    "tags": resident.tags,
                    "reasons": reasons,
                    "anomaly": anomaly is not None,
                    "days_missed": missed.get(resident_id, 0),
                    "last_temperature_c": previous.temperature_c if previous else None,
                    "last_checkin_date": previous.date.isoformat() if previous else None,
                    "_rank": domain.followup_rank(anomaly is not None, missed.get(resident_id, 0), resident.tags),
                }
            )
        items.sort(key=lambda i: (i["_rank"], i["address"]))
        for item in items:
            del item["_rank"]
        return items

    async def buildings(self, grid_ids: list[str] | None) -> list[dict]:
        """The register's buildings (in these grids; None: all): each with its grid, how many
        residents and where (the mean of its residents' registered coordinates)."""
        query = (
            select(Resident.building_id, Resident.grid_id, func.count(Resident.resident_id),
                   func.avg(Resident.lat), func.avg(Resident.lon))
            .group_by(Resident.building_id, Resident.grid_id)
            .order_by(Resident.building_id)
        )  # fmt: skip
        if grid_ids is not None:
            query = query.where(Resident.grid_id.in_(grid_ids))
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).all()
        return [{"building_id": b, "grid_id": g, "residents": n, "lat": lat, "lon": lon} for b, g, n, lat, lon in rows]

    async def completion(
        self,
        day: date,
        by: Literal["building", "grid"],
        grid_ids: list[str] | None,
        building_ids: list[str] | None = None,
    ) -> list[dict]:
        """Expected and checked-in residents per building or grid; None for either filter means
        all. A resident who checked in counts as expected that day, whenever they registered."""
        key = Resident.building_id if by == "building" else Resident.grid_id
        query = (
            select(
                key.label("key"),
                Resident.grid_id if by == "building" else literal(None).label("grid"),
                func.count(Resident.resident_id).label("expected"),
                func.count(DailyCheckIn.checkin_id).label("checked_in"),
                func.avg(Resident.lat).label("lat"),  # a building's place: where its residents are registered
                func.avg(Resident.lon).label("lon"),
            )
            .select_from(Resident)
            .outerjoin(DailyCheckIn, and_(DailyCheckIn.resident_id == Resident.resident_id, DailyCheckIn.date == day))
            # expected that day, or checked in anyway (registered after the cutoff, back early)
            .where(or_(expected_on(day, self.settings), DailyCheckIn.checkin_id.is_not(None)))
            .group_by(key, Resident.grid_id if by == "building" else literal(None))
            .order_by(key)
        )
        if grid_ids is not None:
            query = query.where(Resident.grid_id.in_(grid_ids))
        if building_ids is not None:
            query = query.where(Resident.building_id.in_(building_ids))
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).all()
        out = []
        for row in rows:
            entry = {by + "_id": row[0], "expected": row[2], "checked_in": row[3]}
            if by == "building":
                entry["grid_id"] = row[1]
                entry["lat"], entry["lon"] = row[4], row[5]
            entry["rate"] = domain.completion_rate(row[3], row[2])
            out.append(entry)
        return out
