"""Retention, erasure and the access log of the check-in service (docs/privacy.md)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from checkin.models import CheckInSubmission, DailyCheckIn, Resident, ResidentErasure
from common.accesslog import AccessLogEntry
from common.events.dispatch import ResidentErasedByDispatch
from common.outbox import OutboxMessage
from conftest import START


async def count(harness, model, *where) -> int:
    async with harness.runtime.db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def check_in(harness, resident_id: str, temperature: float = 36.6) -> None:
    body = {"resident_id": resident_id, "temperature_c": temperature}
    response = await harness.client.post("/checkins", json=body, headers=harness.admin)
    assert response.status_code == 201, response.text


async def test_retention_deletes_exactly_the_check_ins_older_than_their_retention(checkin):
    checkin.clock.set(START - timedelta(days=60))
    old, recent = await checkin.register("老王", "101"), await checkin.register("小李", "102")
    for days_ago in (30, 29, 28, 27, 0):  # kept: from 28 days before today (local dates)
        checkin.clock.set(START - timedelta(days=days_ago))
        await check_in(checkin, old)
    checkin.clock.set(START - timedelta(days=1))
    await check_in(checkin, recent)
    checkin.clock.set(START)

    result = await checkin.runtime.run_job("checkin-retention")

    assert result["deleted"]["checkins"] == 2
    assert result["deleted"]["checkin_history"] == 2
    assert await count(checkin, DailyCheckIn, DailyCheckIn.resident_id == old) == 3
    assert await count(checkin, DailyCheckIn, DailyCheckIn.resident_id == recent) == 1
    assert await count(checkin, CheckInSubmission) == 4
    assert await count(checkin, Resident) == 2  # the register itself is not a check-in
    again = await checkin.runtime.run_job("checkin-retention")
    assert again["deleted"] == {}


async def test_an_admin_erases_a_resident_and_sees_who_confirmed(checkin):
    resident = await checkin.register("张三", "301", phone="13912345678")
    await check_in(checkin, resident, 38.9)

    refused = await checkin.client.post(f"/residents/{resident}/erase", headers=checkin.as_("command", "staff-1"))
    assert refused.status_code == 403
    assert await count(checkin, Resident, Resident.resident_id == resident) == 1

    response = await checkin.client.post(f"/residents/{resident}/erase", headers=checkin.admin)
    assert response.status_code == 202, response.text
    erasure = response.json()
    assert response.headers["location"] == f"/residents/{resident}/erasure"
    assert not erasure["complete"]
    assert {s["service"]: s["confirmed"] for s in erasure["services"]} == {
        "checkin": True, "dispatch": False, "command": False, "messaging": False, "timebank": False
    }  # fmt: skip
    assert await count(checkin, Resident, Resident.resident_id == resident) == 0
    assert await count(checkin, DailyCheckIn, DailyCheckIn.resident_id == resident) == 0
    assert await count(checkin, CheckInSubmission, CheckInSubmission.resident_id == resident) == 0
    # The registry hears it, then a tombstone for the key; no sent row of theirs stays.
    rows = await _outbox_rows(checkin, resident)
    assert [(r.event_type, r.topic) for r in rows][-2:] == [
        ("ResidentErased", "checkin.residents.v1"), ("tombstone", "checkin.residents.v1")
    ]  # fmt: skip
    assert rows[-1].value == ""

    # A confirmation, as the consumer applies it.
    confirmed = ResidentErasedByDispatch(erasure_id=erasure["erasure_id"], erased_at=START, records={"requests": 2})
    async with checkin.runtime.work() as uow:
        await checkin.service.erasure_confirmed("dispatch", confirmed, uow)
    status = (await checkin.client.get(f"/residents/{resident}/erasure", headers=checkin.admin)).json()
    dispatch = next(s for s in status["services"] if s["service"] == "dispatch")
    assert dispatch["confirmed"] and dispatch["records"] == {"requests": 2}

    # Asked again: the same erasure, published once more while some service has not confirmed.
    again = await checkin.client.post(f"/residents/{resident}/erase", headers=checkin.admin)
    assert again.json()["erasure_id"] == erasure["erasure_id"]
    assert await count(checkin, ResidentErasure) == 1
    assert [r.event_type for r in await _outbox_rows(checkin, resident)].count("ResidentErased") == 2
    for service in ("command", "messaging", "timebank"):
        async with checkin.runtime.work() as uow:
            await checkin.service.erasure_confirmed(service, confirmed, uow)
    done = await checkin.client.post(f"/residents/{resident}/erase", headers=checkin.admin)
    assert done.json()["complete"] is True
    assert [r.event_type for r in await _outbox_rows(checkin, resident)].count("ResidentErased") == 2


async def test_an_unknown_resident_answers_as_one_the_caller_may_not_act_for(checkin):
    erase = await checkin.client.post("/residents/R-0000000000000000/erase", headers=checkin.admin)
    status = await checkin.client.get("/residents/R-0000000000000000/erasure", headers=checkin.admin)
    lead = checkin.as_("building_lead", "lead-1", building_ids=["B01"])
    other = await checkin.register("王五", "401", building="B03")
    not_theirs = await checkin.client.get(f"/residents/{other}", headers=lead)
    assert erase.status_code == status.status_code == not_theirs.status_code == 404
    assert erase.json()["detail"] == "no resident 'R-0000000000000000' among those you may act for"
    assert not_theirs.json()["detail"] == f"no resident '{other}' among those you may act for"


async def test_reading_follow_ups_is_written_to_the_access_log_for_admins(checkin):
    resident = await checkin.register("赵六", "501", grid="G1")
    await check_in(checkin, resident, 39.1)
    worker = checkin.as_("grid_worker", "gw-1", grid_ids=["G1"])

    followups = await checkin.client.get("/followups", params={"grid_id": "G1"}, headers=worker)
    assert followups.status_code == 200 and followups.json()["count"] == 1

    log = await checkin.client.get("/access-log", params={"resident_id": resident}, headers=checkin.admin)
    assert log.status_code == 200
    assert [(e["sub"], e["role"], e["record"], e["route"]) for e in log.json()] == [
        ("gw-1", "grid_worker", "followups", "GET /followups")
    ]
    assert (await checkin.client.get("/access-log", headers=worker)).status_code == 403
    assert (await checkin.client.get("/access-log", params={"limit": 5000}, headers=checkin.admin)).status_code == 422
    assert await count(checkin, AccessLogEntry) == 1


async def _outbox_rows(harness, key: str) -> list[OutboxMessage]:
    async with harness.runtime.db.session() as session:
        query = select(OutboxMessage).where(OutboxMessage.key == key).order_by(OutboxMessage.seq)
        return list((await session.execute(query)).scalars())
