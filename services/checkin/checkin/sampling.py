"""Sampling rounds (核酸): buildings, a deadline, who was sampled, and who lags behind."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from checkin import domain
from checkin.models import Resident, Sample, SamplingLag, SamplingRound
from checkin.usecases import UseCases
from common.errors import Conflict, Invalid, NotFound
from common.events.checkin import SamplingLagging
from common.outbox import UnitOfWork


class Sampling(UseCases):
    async def open_round(
        self,
        name: str,
        building_ids: list[str],
        deadline: datetime,
        min_rate: float | None,
        round_id: str | None,
        uow: UnitOfWork | None = None,
    ) -> SamplingRound:
        if not building_ids:
            raise Invalid("a sampling round covers at least one building")
        async with self.runtime.work(uow) as uow:
            round_id = round_id or f"S-{uuid.uuid4().hex[:12]}"
            if await uow.session.get(SamplingRound, round_id):
                raise Conflict(f"sampling round {round_id!r} exists")
            known = set(
                (
                    await uow.session.execute(
                        select(Resident.building_id).where(Resident.building_id.in_(building_ids)).distinct()
                    )
                ).scalars()
            )
            unknown = [b for b in building_ids if b not in known]
            if unknown:
                raise Invalid(f"no residents in building(s) {', '.join(unknown)}")
            sampling = SamplingRound(
                round_id=round_id,
                name=name,
                building_ids=list(dict.fromkeys(building_ids)),
                deadline=deadline,
                min_completion_rate=self.settings.sampling_min_completion_rate if min_rate is None else min_rate,
                created_at=self.clock.now(),
            )
            uow.session.add(sampling)
        return sampling

    async def record_samples(
        self, round_id: str, resident_ids: list[str], actor: domain.Actor, uow: UnitOfWork | None = None
    ) -> dict[str, int]:
        """Record who was sampled; each resident must be one the actor may act for (a
        building lead: their buildings' residents), else the answer is "no resident"."""
        async with self.runtime.work(uow) as uow:
            sampling = await uow.session.get(SamplingRound, round_id)
            if sampling is None:
                raise NotFound(f"no sampling round {round_id!r}")
            residents = {
                r.resident_id: r.building_id
                for r in (
                    await uow.session.execute(select(Resident).where(Resident.resident_id.in_(resident_ids)))
                ).scalars()
                if domain.may_act_for(actor, r.resident_id, r.building_id, r.grid_id)
            }
            unknown = [r for r in resident_ids if r not in residents]
            if unknown:
                raise domain.unknown_resident(*unknown)
            outside = [r for r, b in residents.items() if b not in sampling.building_ids]
            if outside:
                raise Invalid(f"resident(s) {', '.join(outside[:10])} live outside this round's buildings")
            now = self.clock.now()
            result = await uow.session.execute(
                self.runtime.db.insert(Sample)
                .on_conflict_do_nothing(index_elements=["round_id", "resident_id"])
                .returning(Sample.resident_id),
                [
                    {"round_id": round_id, "resident_id": r, "sampled_at": now, "recorded_by": actor.sub}
                    for r in residents
                ],
            )
            recorded = len(result.all())
        return {"recorded": recorded, "already": len(residents) - recorded}

    async def round_status(self, round_id: str) -> dict:
        async with self.runtime.db.session() as session:
            sampling = await session.get(SamplingRound, round_id)
            if sampling is None:
                raise NotFound(f"no sampling round {round_id!r}")
            per_building = await _round_completion(session, sampling)
        return _status(sampling, per_building)

    async def rounds(self, limit: int) -> list[dict]:
        """The latest rounds, newest first, each with its completion by building."""
        async with self.runtime.db.session() as session:
            latest = (
                await session.execute(
                    select(SamplingRound).order_by(SamplingRound.created_at.desc(), SamplingRound.round_id).limit(limit)
                )
            ).scalars()
            return [_status(sampling, await _round_completion(session, sampling)) for sampling in latest.all()]

    async def evaluate_rounds(self) -> int:
        """At each round's deadline, flag buildings below its rate (SamplingLagging, once)."""
        now = self.clock.now()
        async with self.runtime.db.session() as session:
            due = (
                (
                    await session.execute(
                        select(SamplingRound.round_id).where(
                            SamplingRound.deadline <= now, SamplingRound.evaluated_at.is_(None)
                        )
                    )
                )
                .scalars()
                .all()
            )
        flagged = 0
        for round_id in due:
            flagged += await self.evaluate_round(round_id)
        return flagged

    async def evaluate_round(self, round_id: str, uow: UnitOfWork | None = None) -> int:
        now = self.clock.now()
        flagged = 0
        async with self.runtime.work(uow) as uow:
            sampling = await uow.session.get(SamplingRound, round_id)
            per_building = await _round_completion(uow.session, sampling)
            grids = dict(
                (
                    await uow.session.execute(
                        select(Resident.building_id, Resident.grid_id)
                        .where(Resident.building_id.in_(sampling.building_ids))
                        .distinct()
                    )
                ).all()
            )
            for building_id, rate in domain.lagging(per_building, sampling.min_completion_rate).items():
                claimed = await uow.session.execute(
                    self.runtime.db.insert(SamplingLag)
                    .values(round_id=round_id, building_id=building_id, completion_rate=rate, detected_at=now)
                    .on_conflict_do_nothing(index_elements=["round_id", "building_id"])
                )
                if claimed.rowcount:
                    sampled, expected = per_building[building_id]
                    uow.emit(
                        SamplingLagging(
                            round_id=round_id,
                            building_id=building_id,
                            completion_rate=rate,
                            grid_id=grids.get(building_id),
                            sampled=sampled,
                            expected=expected,
                            deadline=sampling.deadline,
                        ),
                        at=now,
                    )
                    flagged += 1
            sampling.evaluated_at = now
        return flagged


async def _round_completion(session: AsyncSession, sampling: SamplingRound) -> dict[str, tuple[int, int]]:
    """(sampled, expected) per building of the round."""
    rows = await session.execute(
        select(Resident.building_id, func.count(Resident.resident_id), func.count(Sample.sample_id))
        .outerjoin(Sample, and_(Sample.resident_id == Resident.resident_id, Sample.round_id == sampling.round_id))
        .where(Resident.building_id.in_(sampling.building_ids))
        .group_by(Resident.building_id)
    )
    return {b: (sampled, expected) for b, expected, sampled in rows}


def _status(sampling: SamplingRound, per_building: dict[str, tuple[int, int]]) -> dict:
    return {
        "round_id": sampling.round_id,
        "name": sampling.name,
        "deadline": sampling.deadline,
        "min_completion_rate": sampling.min_completion_rate,
        "buildings": [
            {"building_id": b, "sampled": s, "expected": e, "rate": domain.completion_rate(s, e)}
            for b, (s, e) in per_building.items()
        ],
    }
