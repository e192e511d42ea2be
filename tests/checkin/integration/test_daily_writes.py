"""The check-in batch writer on SQLite and PostgreSQL: what a batch leaves behind, and what a
refused batch leaves (nothing)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from checkin.daily_writes import daily_writes
from checkin.models import CheckInSubmission, DailyCheckIn
from common.events.checkin import CheckInSubmitted


def check_in(harness, resident_id: str, temperature_c: float, by: str = "tester") -> dict:
    return {"resident_id": resident_id, "date": harness.service.today(), "temperature_c": temperature_c, "symptoms": [],
            "fever": temperature_c >= 37.3, "anomaly": temperature_c >= 37.3, "channel": "self", "submitted_by": by,
            "submitted_at": harness.clock.now()}  # fmt: skip


def submitted(row: dict) -> CheckInSubmitted:
    return CheckInSubmitted(
        resident_id=row["resident_id"], date=row["date"], temperature_c=row["temperature_c"], channel="self"
    )


async def stored(harness) -> tuple[dict, int]:
    async with harness.service.runtime.db.session() as session:
        days = (
            await session.execute(
                select(
                    DailyCheckIn.resident_id,
                    DailyCheckIn.temperature_c,
                    DailyCheckIn.submitted_by,
                    DailyCheckIn.revisions,
                )
            )
        ).all()
        history = await session.scalar(select(func.count()).select_from(CheckInSubmission))
    return {rid: (t, by, revisions) for rid, t, by, revisions in days}, history


async def test_a_batch_keeps_every_check_in_the_last_one_of_a_day_and_counts_each(checkin):
    a, b = await checkin.register("甲", "101"), await checkin.register("乙", "102")
    batch = [check_in(checkin, a, 36.5, "first"), check_in(checkin, b, 36.6), check_in(checkin, a, 38.1, "second"),
             check_in(checkin, a, 36.9, "third")]  # fmt: skip
    async with daily_writes(checkin.service.runtime) as writes:
        assert await writes.save(batch, [submitted(row) for row in batch]) == [1, 1, 2, 3]
    # A later batch counts on from what is stored.
    async with daily_writes(checkin.service.runtime) as writes:
        assert await writes.save([check_in(checkin, b, 36.4, "later")], []) == [2]

    days, history = await stored(checkin)
    assert days == {a: (36.9, "third", 3), b: (36.4, "later", 2)} and history == 5
    events = await checkin.outbox("CheckInSubmitted")
    assert [(e["subject"], e["data"]["temperature_c"]) for e in events] == [(a, 36.5), (b, 36.6), (a, 38.1), (a, 36.9)]


async def test_a_refused_batch_writes_nothing(checkin):
    a = await checkin.register("甲", "101")
    async with daily_writes(checkin.service.runtime) as writes:
        await writes.save([check_in(checkin, a, 36.5)], [submitted(check_in(checkin, a, 36.5))])
    before, outbox = await stored(checkin), await checkin.outbox()

    # A resident the database does not know breaks the foreign key: the whole batch goes.
    batch = [check_in(checkin, a, 38.5), check_in(checkin, "R-nobody", 36.5)]
    with pytest.raises(Exception, match="(?i)foreign key"):
        async with daily_writes(checkin.service.runtime) as writes:
            await writes.save(batch, [submitted(row) for row in batch])
    assert await stored(checkin) == before and await checkin.outbox() == outbox
