"""`POST /checkins` with an Idempotency-Key: a repeat gets the first answer and changes nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from checkin.models import CheckInSubmission, IdempotencyKey


async def history(harness) -> int:
    async with harness.runtime.db.session() as session:
        return await session.scalar(select(func.count()).select_from(CheckInSubmission))


def keyed(harness, rid: str, key: str) -> dict[str, str]:
    return {**harness.as_("resident", rid), "Idempotency-Key": key}


async def test_a_repeat_with_the_same_key_gets_the_first_answer_and_changes_nothing(checkin):
    rid = await checkin.register("王芳", "101")
    body = {"resident_id": rid, "temperature_c": 38.1, "symptoms": ["cough", "fatigue"]}
    first = await checkin.client.post("/checkins", json=body, headers=keyed(checkin, rid, "k-1"))
    checkin.clock.advance(minutes=5)
    again = await checkin.client.post(
        "/checkins", json={**body, "symptoms": ["fatigue", "cough"]}, headers=keyed(checkin, rid, "k-1")
    )
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and first.json()["revisions"] == 1
    assert (
        len(await checkin.outbox("CheckInSubmitted")) == 1 and len(await checkin.outbox("HealthAnomalyReported")) == 1
    )
    assert await history(checkin) == 1

    # Another key is another check-in; no key at all is one too.
    other = await checkin.client.post("/checkins", json=body, headers=keyed(checkin, rid, "k-2"))
    plain = await checkin.client.post("/checkins", json=body, headers=checkin.as_("resident", rid))
    assert (other.json()["revisions"], plain.json()["revisions"]) == (2, 3)
    assert len(await checkin.outbox("CheckInSubmitted")) == 3


async def test_the_same_key_for_another_check_in_is_refused_and_changes_nothing(checkin):
    rid = await checkin.register("李雷", "102")
    headers = keyed(checkin, rid, "k-1")
    await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": 36.5}, headers=headers)
    refused = await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": 36.6}, headers=headers)
    assert refused.status_code == 422 and "already used for a different check-in" in refused.json()["detail"]
    assert len(await checkin.outbox("CheckInSubmitted")) == 1 and await history(checkin) == 1

    bad = await checkin.client.post(
        "/checkins", json={"resident_id": rid, "temperature_c": 36.5}, headers=keyed(checkin, rid, "two words")
    )
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["detail"]


async def test_keys_belong_to_their_caller(checkin):
    rid = await checkin.register("韩梅梅", "103", building="B01")
    body = {"resident_id": rid, "temperature_c": 36.5}
    mine = await checkin.client.post("/checkins", json=body, headers=keyed(checkin, rid, "same"))
    lead = {**checkin.as_("building_lead", "lead-1", building_ids=["B01"]), "Idempotency-Key": "same"}
    theirs = await checkin.client.post("/checkins", json=body, headers=lead)
    assert (mine.json()["revisions"], theirs.json()["revisions"]) == (1, 2)
    assert theirs.json()["channel"] == "building_lead"


async def test_a_refused_check_in_leaves_its_key_free(checkin):
    rid = await checkin.register("张伟", "104")
    headers = {**checkin.admin, "Idempotency-Key": "k-1"}
    missing = await checkin.client.post(
        "/checkins", json={"resident_id": "R-nobody", "temperature_c": 36.5}, headers=headers
    )
    assert missing.status_code == 404
    accepted = await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": 36.5}, headers=headers)
    assert accepted.status_code == 201 and accepted.json()["revisions"] == 1


async def test_concurrent_repeats_on_two_replicas_make_one_check_in(checkin_app):
    async with checkin_app() as one, checkin_app() as two:
        rid = await one.register("赵敏", "105")
        body = {"resident_id": rid, "temperature_c": 37.9}
        answers = await asyncio.gather(
            *(app.client.post("/checkins", json=body, headers=keyed(app, rid, "offline-1")) for app in (one, two) * 4)
        )
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.text for a in answers}) == 1 and answers[0].json()["revisions"] == 1
        assert len(await one.outbox("CheckInSubmitted")) == 1 and len(await one.outbox("HealthAnomalyReported")) == 1
        assert await history(one) == 1


async def test_keys_are_forgotten_after_the_setting(checkin_app):
    async with checkin_app(idempotency_key_hours=2) as checkin:
        rid = await checkin.register("周芷若", "106")
        body = {"resident_id": rid, "temperature_c": 36.5}
        await checkin.client.post("/checkins", json=body, headers=keyed(checkin, rid, "k-1"))
        checkin.clock.advance(hours=1)
        assert await checkin.service.forget_old_idempotency_keys() == 0
        checkin.clock.advance(hours=1, seconds=1)
        assert await checkin.service.forget_old_idempotency_keys() == 1
        async with checkin.runtime.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
        again = await checkin.client.post("/checkins", json=body, headers=keyed(checkin, rid, "k-1"))
        assert again.json()["revisions"] == 2
