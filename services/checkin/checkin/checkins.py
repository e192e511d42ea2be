"""The daily check-in: concurrent requests written together (group commit), and check-ins
sent with an idempotency key answered once, however often they are sent."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pydantic_core
from sqlalchemy import and_, bindparam, delete, or_, select, update

from checkin import domain
from checkin.daily_writes import DailyWrites, ResidentFacts, daily_writes
from checkin.group_commit import GroupCommit
from checkin.models import IdempotencyKey
from checkin.settings import CheckinSettings
from checkin.usecases import UseCases
from common.errors import Conflict, DomainError, Invalid
from common.events.checkin import CheckInSubmitted, HealthAnomalyReported
from common.outbox import UnitOfWork
from common.runtime import Runtime


@dataclass(frozen=True, slots=True)
class _Key:
    caller: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class _CheckInRequest:
    actor: domain.Actor
    resident_id: str
    day: date
    temperature_c: float
    assessment: domain.Assessment
    channel: str | None  # as requested; the batch decides it with the resident at hand
    at: datetime
    key: _Key | None = None


class CheckIns(UseCases):
    def __init__(self, runtime: Runtime, settings: CheckinSettings, on_batch: Callable[[int], None]) -> None:
        super().__init__(runtime, settings)
        self._on_batch = on_batch

    async def check_in(
        self,
        actor: domain.Actor,
        resident_id: str,
        temperature_c: float,
        symptoms: list[str],
        channel: str | None = None,
        day: date | None = None,
        idempotency_key: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> dict:
        """Record a resident's check-in for a local date; answers the day's record.

        Concurrent check-ins are written together (group commit, see group_commit.py): the
        reading is checked here, the resident and the actor's right in the batch. With an
        idempotency key, a repeat of the same check-in by the same caller gets the first
        answer and changes nothing; the same key for another check-in is refused. Given a
        unit of work (a consumer's), the check-in is written in it instead, alone: it commits
        with what else that unit writes (the consumer's claim of the event), or not at all."""
        key = None
        if idempotency_key is not None:
            request_hash = _request_hash(resident_id, temperature_c, symptoms, channel, day)
            key = _Key(actor.sub, domain.check_idempotency_key(idempotency_key), request_hash)
        assessment = domain.assess(temperature_c, symptoms)
        day = domain.check_date(day, self.today())
        request = _CheckInRequest(actor, resident_id, day, temperature_c, assessment, channel, self.clock.now(), key)
        if uow is not None:
            if key is not None:
                raise Invalid("an idempotency key is for HTTP callers: a consumer's event is applied once by its inbox")
            async with daily_writes(self.runtime, uow) as writes:
                (outcome,) = await self._write(writes, [request])
            if isinstance(outcome, DomainError):
                raise outcome
            return outcome
        if key is None:
            return await self._check_ins.submit(request)
        return await self._keyed_check_ins.submit(request)

    @functools.cached_property
    def _check_ins(self) -> GroupCommit[_CheckInRequest, dict]:
        return GroupCommit(
            self._write_check_ins,
            max_batch=self.settings.checkin_batch_max,
            # SQLite has one writer at a time whatever we do; PostgreSQL overlaps batches.
            writers=self.settings.checkin_batch_writers if self.runtime.db.is_postgres else 1,
            on_batch=self._on_batch,
        )

    @functools.cached_property
    def _keyed_check_ins(self) -> GroupCommit[_CheckInRequest, dict]:
        # One writer: two batches claiming the same keys in opposite orders could deadlock.
        return GroupCommit(
            self._write_keyed_check_ins, max_batch=self.settings.checkin_batch_max, on_batch=self._on_batch
        )

    async def _write_check_ins(self, requests: Sequence[_CheckInRequest]) -> list[dict | DomainError]:
        """One atomic write for a batch of check-ins; an outcome per request, in order."""
        async with daily_writes(self.runtime) as writes:  # the hottest path of the day: see daily_writes.py
            return await self._write(writes, requests)

    async def _write_keyed_check_ins(self, requests: Sequence[_CheckInRequest]) -> list[dict | DomainError]:
        """A batch of keyed check-ins: the keys are claimed, the new ones written and their
        answers kept, all in one transaction; a key already used answers what it kept."""
        outcomes: list[dict | DomainError | None] = [None] * len(requests)
        async with self.runtime.work() as uow:
            claimed = await self._claim(uow, requests)
            first: dict[tuple[str, str], int] = {}  # a key's first request in this batch
            fresh: list[int] = []
            for index, request in enumerate(requests):
                ident = (request.key.caller, request.key.key)
                if ident in claimed and ident not in first:
                    first[ident] = index
                    fresh.append(index)
            async with daily_writes(self.runtime, uow) as writes:
                written = await self._write(writes, [requests[i] for i in fresh])
            for index, outcome in zip(fresh, written, strict=True):
                outcomes[index] = outcome
            await self._keep_answers(uow, [requests[i] for i in fresh], written)
            stored = await self._stored(uow, [r for r in requests if (r.key.caller, r.key.key) not in first])
            for index, request in enumerate(requests):
                if outcomes[index] is not None:
                    continue
                ident = (request.key.caller, request.key.key)
                if ident in first:  # the same key twice in one batch: the second is a repeat
                    kept = requests[first[ident]].key.request_hash, outcomes[first[ident]]
                else:
                    kept = stored.get(ident, (request.key.request_hash, None))
                outcomes[index] = _repeat(request.key, *kept)
        return outcomes  # type: ignore[return-value]  # every slot is filled above

    async def _write(self, writes: DailyWrites, requests: Sequence[_CheckInRequest]) -> list[dict | DomainError]:
        outcomes: list[dict | DomainError | None] = [None] * len(requests)
        residents = await writes.residents({r.resident_id for r in requests}) if requests else {}
        accepted: list[tuple[int, dict]] = []
        events: list[CheckInSubmitted | HealthAnomalyReported] = []
        for index, request in enumerate(requests):
            try:
                resident, values = _check_in_values(request, residents.get(request.resident_id))
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

    async def _claim(self, uow: UnitOfWork, requests: Sequence[_CheckInRequest]) -> set[tuple[str, str]]:
        """Insert the batch's keys; answers those that were new. On PostgreSQL a key another
        transaction is claiming waits for it, then counts as used (or as new if it rolled back)."""
        rows = {
            (r.key.caller, r.key.key): {"caller": r.key.caller, "key": r.key.key, "request_hash": r.key.request_hash,
                                        "answer": {}, "created_at": r.at}
            for r in requests
        }  # fmt: skip
        table = IdempotencyKey.__table__
        result = await uow.session.execute(
            self.runtime.db.insert(table)
            .on_conflict_do_nothing(index_elements=["caller", "key"])
            .returning(table.c.caller, table.c.key),
            sorted(rows.values(), key=lambda row: (row["caller"], row["key"])),  # a fixed lock order
        )
        return {(row.caller, row.key) for row in result}

    async def _keep_answers(
        self, uow: UnitOfWork, requests: Sequence[_CheckInRequest], outcomes: Sequence[dict | DomainError]
    ) -> None:
        """Keep what an accepted check-in answered; free the key of a refused one (it changed nothing)."""
        table = IdempotencyKey.__table__
        answers = [
            {"k_caller": r.key.caller, "k_key": r.key.key, "answer": pydantic_core.to_jsonable_python(outcome)}
            for r, outcome in zip(requests, outcomes, strict=True)
            if not isinstance(outcome, DomainError)
        ]
        refused = [r.key for r, outcome in zip(requests, outcomes, strict=True) if isinstance(outcome, DomainError)]
        if answers:
            await uow.session.execute(
                update(table)
                .where(table.c.caller == bindparam("k_caller"), table.c.key == bindparam("k_key"))
                .values(answer=bindparam("answer")),
                answers,
            )
        if refused:
            await uow.session.execute(delete(table).where(_any_of(refused)))

    async def _stored(
        self, uow: UnitOfWork, requests: Sequence[_CheckInRequest]
    ) -> dict[tuple[str, str], tuple[str, dict]]:
        keys = [r.key for r in requests]
        if not keys:
            return {}
        rows = await uow.session.execute(
            select(IdempotencyKey.caller, IdempotencyKey.key, IdempotencyKey.request_hash, IdempotencyKey.answer).where(
                _any_of(keys)
            )
        )
        return {(row.caller, row.key): (row.request_hash, row.answer) for row in rows}

    async def forget_old_idempotency_keys(self) -> int:
        """The periodic job: keys older than CHECKIN_IDEMPOTENCY_KEY_HOURS are forgotten."""
        before = self.clock.now() - timedelta(hours=self.settings.idempotency_key_hours)
        async with self.runtime.work() as uow:
            result = await uow.session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < before))
        return result.rowcount or 0


def _any_of(keys: Sequence[_Key]):
    return or_(*(and_(IdempotencyKey.caller == k.caller, IdempotencyKey.key == k.key) for k in keys))


def _repeat(key: _Key, request_hash: str, answer: dict | DomainError | None) -> dict | DomainError:
    if request_hash != key.request_hash:
        return Invalid(
            f"Idempotency-Key {key.key!r} was already used for a different check-in: "
            "send a new key with each new check-in, and the same key only to repeat one"
        )
    if isinstance(answer, DomainError):  # refused in this batch: so is its repeat
        return answer
    if not answer:  # claimed by a request that has not finished (SQLite cannot wait for it)
        return Conflict(f"a check-in with Idempotency-Key {key.key!r} is still being written: try again")
    return answer


def _request_hash(
    resident_id: str, temperature_c: float, symptoms: list[str], channel: str | None, day: date | None
) -> str:
    """The request as its sender meant it: symptoms in any order, the date as sent."""
    body = pydantic_core.to_json([resident_id, temperature_c, sorted(symptoms), channel, day])
    return hashlib.sha256(body).hexdigest()


def _check_in_values(request: _CheckInRequest, resident: ResidentFacts | None) -> tuple[ResidentFacts, dict]:
    if resident is None:
        raise domain.unknown_resident(request.resident_id)
    channel = domain.channel_for(
        request.actor, request.resident_id, resident.building_id, resident.grid_id, request.channel
    )
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


def _check_in_events(
    request: _CheckInRequest, resident: ResidentFacts, values: dict
) -> Iterator[CheckInSubmitted | HealthAnomalyReported]:
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
