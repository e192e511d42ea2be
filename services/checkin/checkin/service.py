"""Check-in use cases: load, decide (domain), save and stage events, in one transaction.

Routes (api.py), handlers and periodic jobs (jobs.py) all call these.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import Date, and_, exists, func, literal, select, update
from sqlalchemy.orm import aliased

from checkin import domain
from checkin.daily_writes import ResidentFacts, daily_writes
from checkin.group_commit import GroupCommit
from checkin.models import (
    Absence,
    DailyCheckIn,
    MissedCheckIn,
    Reminder,
    Resident,
    Sample,
    SamplingLag,
    SamplingRound,
)
from checkin.settings import CheckinSettings
from common.clock import day_bounds, local_date, local_instant
from common.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from common.events.checkin import (
    CheckInMissed,
    CheckInSubmitted,
    HealthAnomalyReported,
    ResidentRegistered,
    SamplingLagging,
)
from common.notify import Notification, Notifier, NotifyFailed, Recipient
from common.outbox import UnitOfWork
from common.runtime import Runtime

log = logging.getLogger(__name__)
SWEEP_FLUSH_EVERY = 5000  # staged CheckInMissed written in chunks: a sweep may find tens of thousands


@dataclass(frozen=True, slots=True)
class _CheckInRequest:
    actor: domain.Actor
    resident_id: str
    day: date
    temperature_c: float
    assessment: domain.Assessment
    channel: str | None  # as requested; the batch decides it with the resident at hand
    at: datetime


@dataclass(frozen=True)
class SweepResult:
    date: date
    missed: int  # newly found by this sweep (0 when run again)
    total_missed: int  # all missed records for the date


class CheckinService:
    def __init__(self, runtime: Runtime, settings: CheckinSettings, notifier: Notifier) -> None:
        self.runtime = runtime
        self.settings = settings
        self.notifier = notifier
        self.tz = settings.tz
        self.observe_check_in_batch: Callable[[int], None] = lambda size: None  # set by CheckinMetrics

    @property
    def clock(self):
        return self.runtime.clock

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    def _insert(self, uow: UnitOfWork):
        return self.runtime.db.insert

    # -- residents ----------------------------------------------------------------------

    async def register(self, draft: domain.ResidentDraft) -> Resident:
        async with self.uow() as uow:
            existing = await uow.session.get(Resident, draft.resident_id)
            if existing:
                raise Conflict(
                    f"resident already registered as {existing.resident_id}", resident_id=existing.resident_id
                )
            resident = _resident(draft, self._registered_at(draft))
            uow.session.add(resident)
            uow.emit(_registered(resident.model_dump()))
            await uow.commit()
            return resident

    async def import_residents(
        self, rows: Iterable[tuple[int, dict]], allowed_grids: set[str] | None = None
    ) -> domain.ImportReport:
        """Import spreadsheet rows (row number, fields). Valid rows are saved, each rejected
        row is reported with its reason, and importing the same file again changes nothing."""
        report = domain.ImportReport()
        seen: set[str] = set()
        for chunk in _chunks(rows, self.settings.import_chunk_rows):
            drafts: list[domain.ResidentDraft] = []
            for number, fields in chunk:
                report.total += 1
                if "_address_error" in fields:
                    report.reject(number, f"address {fields['_address_error']!r} is not building-unit-room, e.g. B03-2-401")
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
                if draft.resident_id in seen:
                    report.reject(number, "the same resident appears earlier in this file")
                    continue
                seen.add(draft.resident_id)
                drafts.append(draft)
            imported = await self._save_new(drafts)
            report.imported += imported
            report.unchanged += len(drafts) - imported
        return report

    async def _save_new(self, drafts: list[domain.ResidentDraft]) -> int:
        if not drafts:
            return 0
        async with self.uow() as uow:
            insert = self._insert(uow)
            # Plain rows and a core INSERT: building ORM objects would cost more than the database.
            rows = [_resident_row(d, self._registered_at(d)) for d in drafts]
            result = await uow.session.execute(
                insert(Resident.__table__).on_conflict_do_nothing().returning(Resident.__table__.c.resident_id), rows
            )
            new_ids = set(result.scalars())
            for row in rows:
                if row["resident_id"] in new_ids:
                    uow.emit(_registered(row))
            await uow.commit()
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
            raise NotFound(f"no resident {resident_id!r}")
        return resident

    async def record_absence(
        self, resident_id: str, from_date: date, to_date: date, reason: str, by: str
    ) -> Absence:
        if to_date < from_date:
            raise Invalid(f"to_date {to_date} is before from_date {from_date}")
        async with self.uow() as uow:
            if await uow.session.get(Resident, resident_id) is None:
                raise NotFound(f"no resident {resident_id!r}")
            absence = Absence(
                resident_id=resident_id,
                from_date=from_date,
                to_date=to_date,
                reason=reason,
                recorded_by=by,
                recorded_at=self.clock.now(),
            )
            uow.session.add(absence)
            await uow.commit()
            return absence

    # -- daily check-in -----------------------------------------------------------------

    async def check_in(
        self,
        actor: domain.Actor,
        resident_id: str,
        temperature_c: float,
        symptoms: list[str],
        channel: str | None = None,
        day: date | None = None,
    ) -> dict:
        """Record a resident's check-in for a local date; answers the day's record.

        Concurrent check-ins are written together (group commit, see group_commit.py): the
        reading is checked here, the resident and the actor's right in the batch."""
        assessment = domain.assess(temperature_c, symptoms)
        day = domain.check_date(day, self.today())
        request = _CheckInRequest(actor, resident_id, day, temperature_c, assessment, channel, self.clock.now())
        return await self._check_ins.submit(request)

    async def _write_check_ins(self, requests: Sequence[_CheckInRequest]) -> list[dict | DomainError]:
        """One atomic write for a batch of check-ins; an outcome per request, in order."""
        outcomes: list[dict | DomainError | None] = [None] * len(requests)
        async with daily_writes(self.runtime) as writes:  # the hottest path of the day: see daily_writes.py
            residents = await writes.residents({r.resident_id for r in requests})
            accepted: list[tuple[int, dict]] = []
            events: list[CheckInSubmitted | HealthAnomalyReported] = []
            for index, request in enumerate(requests):
                try:
                    resident, values = self._check_in_values(request, residents.get(request.resident_id))
                except DomainError as refused:
                    outcomes[index] = refused
                    continue
                accepted.append((index, values))
                events.extend(_check_in_events(request, resident, values))
            if accepted:
                revisions = await writes.save([values for _, values in accepted], events)
                for (index, values), count in zip(accepted, revisions, strict=True):
                    outcomes[index] = {**values, "revisions": count}
        return outcomes  # type: ignore[return-value]  # every slot is filled above

    def _check_in_values(self, request: _CheckInRequest, resident: ResidentFacts | None) -> tuple[ResidentFacts, dict]:
        if resident is None:
            raise NotFound(f"no resident {request.resident_id!r}: register them first")
        channel = domain.channel_for(request.actor, request.resident_id, resident.building_id, resident.grid_id, request.channel)
        return resident, {
            "resident_id": request.resident_id,
            "date": request.day,
            "temperature_c": request.temperature_c,
            "symptoms": list(request.assessment.symptoms),
            "fever": request.assessment.fever,
            "anomaly": request.assessment.anomaly,
            "channel": channel,
            "submitted_by": request.actor.sub,
            "submitted_at": request.at,
        }

    @functools.cached_property
    def _check_ins(self) -> GroupCommit[_CheckInRequest, dict]:
        return GroupCommit(
            self._write_check_ins,
            max_batch=self.settings.checkin_batch_max,
            # SQLite has one writer at a time whatever we do; PostgreSQL overlaps batches.
            writers=self.settings.checkin_batch_writers if self.runtime.db.is_postgres else 1,
            on_batch=lambda size: self.observe_check_in_batch(size),
        )

    # -- the cutoff sweep ---------------------------------------------------------------

    def _expected(self, day: date):
        """Residents expected to check in on `day`: registered before its cutoff, not away."""
        return and_(
            Resident.registered_at < local_instant(day, self.settings.cutoff_time, self.tz),
            ~exists().where(
                Absence.resident_id == Resident.resident_id, Absence.from_date <= day, Absence.to_date >= day
            ),
        )

    async def sweep(self, day: date) -> SweepResult:
        """Find who missed `day`'s check-in and emit one CheckInMissed each: a single
        set-based INSERT ... SELECT; the unique (resident, date) makes a second run, or a
        second replica, find nobody new."""
        day = domain.check_sweep_date(day, self.today())
        sweep_id = uuid.uuid4().hex
        async with self.uow() as uow:
            insert = self._insert(uow)
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
                .where(
                    self._expected(day),
                    ~exists().where(DailyCheckIn.resident_id == Resident.resident_id, DailyCheckIn.date == day),
                )
            )
            columns = ["resident_id", "date", "consecutive_days", "grid_id", "building_id", "detected_at", "sweep_id"]
            await uow.session.execute(
                insert(MissedCheckIn)
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
            await uow.commit()
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

    # -- reminders ----------------------------------------------------------------------

    async def send_reminders(self, day: date | None = None) -> dict[str, int]:
        """Remind who has not checked in yet. Reminder rows are claimed first (unique per
        resident and date), so two replicas never remind the same person twice."""
        day = day or self.today()
        now = self.clock.now()
        async with self.uow() as uow:
            insert = self._insert(uow)
            pending = (
                select(Resident.resident_id, literal(day, Date), literal("sms"), literal("pending"), literal(0),
                       literal(now, Reminder.__table__.c.created_at.type))
                .where(
                    self._expected(day),
                    ~exists().where(DailyCheckIn.resident_id == Resident.resident_id, DailyCheckIn.date == day),
                )
            )
            await uow.session.execute(
                insert(Reminder)
                .from_select(["resident_id", "date", "channel", "status", "attempts", "created_at"], pending)
                .on_conflict_do_nothing(index_elements=["resident_id", "date"])
            )
            await uow.commit()
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
            async with self.runtime.db.session() as session:
                await session.execute(
                    update(Reminder)
                    .where(Reminder.reminder_id == reminder.reminder_id)
                    .values(status=status, channel=channel, attempts=Reminder.attempts + 1, last_error=error)
                )
                await session.commit()
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

    # -- what grid workers and staff read -----------------------------------------------

    async def followups(self, grid_ids: list[str], day: date) -> list[dict]:
        """Who needs a call on `day`: fever or symptoms first, then most consecutive misses,
        then special-population tags, with what the worker needs to act."""
        async with self.runtime.db.session() as session:
            missed = {  # missed at the cutoff and still not checked in (a late check-in needs no call)
                row.resident_id: row.consecutive_days
                for row in await session.execute(
                    select(MissedCheckIn.resident_id, MissedCheckIn.consecutive_days).where(
                        MissedCheckIn.date == day,
                        MissedCheckIn.grid_id.in_(grid_ids),
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
                        .where(DailyCheckIn.date == day, DailyCheckIn.anomaly, Resident.grid_id.in_(grid_ids))
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

    async def completion(self, day: date, by: Literal["building", "grid"], grid_ids: list[str] | None) -> list[dict]:
        key = Resident.building_id if by == "building" else Resident.grid_id
        query = (
            select(
                key.label("key"),
                Resident.grid_id if by == "building" else literal(None).label("grid"),
                func.count(Resident.resident_id).label("expected"),
                func.count(DailyCheckIn.checkin_id).label("checked_in"),
            )
            .select_from(Resident)
            .outerjoin(
                DailyCheckIn, and_(DailyCheckIn.resident_id == Resident.resident_id, DailyCheckIn.date == day)
            )
            .where(self._expected(day))
            .group_by(key, Resident.grid_id if by == "building" else literal(None))
            .order_by(key)
        )
        if grid_ids is not None:
            query = query.where(Resident.grid_id.in_(grid_ids))
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).all()
        out = []
        for row in rows:
            entry = {by + "_id": row[0], "expected": row[2], "checked_in": row[3]}
            if by == "building":
                entry["grid_id"] = row[1]
            entry["rate"] = domain.completion_rate(row[3], row[2])
            out.append(entry)
        return out

    # -- sampling rounds (核酸) ----------------------------------------------------------

    async def open_round(
        self, name: str, building_ids: list[str], deadline: datetime, min_rate: float | None, round_id: str | None
    ) -> SamplingRound:
        if not building_ids:
            raise Invalid("a sampling round covers at least one building")
        async with self.uow() as uow:
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
            await uow.commit()
            return sampling

    async def record_samples(self, round_id: str, resident_ids: list[str], by: str) -> dict[str, int]:
        async with self.uow() as uow:
            sampling = await uow.session.get(SamplingRound, round_id)
            if sampling is None:
                raise NotFound(f"no sampling round {round_id!r}")
            residents = {
                r.resident_id: r.building_id
                for r in (
                    await uow.session.execute(select(Resident).where(Resident.resident_id.in_(resident_ids)))
                ).scalars()
            }
            unknown = [r for r in resident_ids if r not in residents]
            if unknown:
                raise NotFound(f"no resident(s) {', '.join(unknown[:10])}")
            outside = [r for r, b in residents.items() if b not in sampling.building_ids]
            if outside:
                raise Invalid(f"resident(s) {', '.join(outside[:10])} live outside this round's buildings")
            insert = self._insert(uow)
            now = self.clock.now()
            result = await uow.session.execute(
                insert(Sample)
                .on_conflict_do_nothing(index_elements=["round_id", "resident_id"])
                .returning(Sample.resident_id),
                [{"round_id": round_id, "resident_id": r, "sampled_at": now, "recorded_by": by} for r in residents],
            )
            recorded = len(result.all())
            await uow.commit()
            return {"recorded": recorded, "already": len(residents) - recorded}

    async def round_status(self, round_id: str) -> dict:
        async with self.runtime.db.session() as session:
            sampling = await session.get(SamplingRound, round_id)
            if sampling is None:
                raise NotFound(f"no sampling round {round_id!r}")
            per_building = await self._round_completion(session, sampling)
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

    async def _round_completion(self, session, sampling: SamplingRound) -> dict[str, tuple[int, int]]:
        rows = await session.execute(
            select(Resident.building_id, func.count(Resident.resident_id), func.count(Sample.sample_id))
            .outerjoin(
                Sample, and_(Sample.resident_id == Resident.resident_id, Sample.round_id == sampling.round_id)
            )
            .where(Resident.building_id.in_(sampling.building_ids))
            .group_by(Resident.building_id)
        )
        return {b: (sampled, expected) for b, expected, sampled in rows}

    async def evaluate_rounds(self) -> int:
        """At each round's deadline, flag buildings below its rate (SamplingLagging, once)."""
        now = self.clock.now()
        flagged = 0
        async with self.runtime.db.session() as session:
            due = (
                await session.execute(
                    select(SamplingRound.round_id).where(
                        SamplingRound.deadline <= now, SamplingRound.evaluated_at.is_(None)
                    )
                )
            ).scalars().all()
        for round_id in due:
            async with self.uow() as uow:
                sampling = await uow.session.get(SamplingRound, round_id)
                per_building = await self._round_completion(uow.session, sampling)
                grids = dict(
                    (
                        await uow.session.execute(
                            select(Resident.building_id, Resident.grid_id)
                            .where(Resident.building_id.in_(sampling.building_ids))
                            .distinct()
                        )
                    ).all()
                )
                insert = self._insert(uow)
                for building_id, rate in domain.lagging(per_building, sampling.min_completion_rate).items():
                    claimed = await uow.session.execute(
                        insert(SamplingLag)
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
                            )
                        )
                        flagged += 1
                sampling.evaluated_at = now
                await uow.commit()
        return flagged


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
        "registered_at": registered_at,
    }


def _resident(draft: domain.ResidentDraft, registered_at: datetime) -> Resident:
    return Resident(**_resident_row(draft, registered_at))


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


def _check_in_events(request: _CheckInRequest, resident: ResidentFacts, values: dict) -> Iterator[CheckInSubmitted | HealthAnomalyReported]:
    yield CheckInSubmitted(
        resident_id=request.resident_id,
        date=request.day,
        temperature_c=request.temperature_c,
        symptoms=values["symptoms"],
        channel=values["channel"],
        submitted_by=request.actor.sub,
        grid_id=resident.grid_id,
        building_id=resident.building_id,
        fever=request.assessment.fever,
    )
    if request.assessment.anomaly:
        yield HealthAnomalyReported(
            resident_id=request.resident_id,
            date=request.day,
            temperature_c=request.temperature_c,
            symptoms=values["symptoms"],
            grid_id=resident.grid_id,
            building_id=resident.building_id,
            fever=request.assessment.fever,
            unit=resident.unit,
            room=resident.room,
            name=resident.name,
            phone=resident.phone,
            tags=resident.tags,
            lat=resident.lat,
            lon=resident.lon,
        )


def ensure_scope(allowed: bool, message: str) -> None:
    if not allowed:
        raise Forbidden(message)
