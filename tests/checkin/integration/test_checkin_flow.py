"""The check-in service through its HTTP API, on SQLite and PostgreSQL, events read from the outbox."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from datetime import timedelta

from openpyxl import Workbook
from sqlalchemy import func, select

from checkin.api import CheckInOut
from checkin.models import CheckInSubmission, DailyCheckIn


async def test_fever_check_in_reports_a_health_anomaly(checkin):
    rid = await checkin.register("王芳", "101", tags=["elderly"], lat=31.2, lon=121.4)
    response = await checkin.client.post(
        "/checkins",
        json={"resident_id": rid, "temperature_c": 38.2, "symptoms": ["cough"]},
        headers=checkin.as_("resident", rid),
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["fever"] is True
    assert (
        CheckInOut.model_validate(answer).model_dump(mode="json") == answer
    )  # the documented answer, not validated by FastAPI
    [submitted] = await checkin.outbox("CheckInSubmitted")
    [anomaly] = await checkin.outbox("HealthAnomalyReported")
    assert submitted["subject"] == rid and submitted["data"]["channel"] == "self"
    assert (
        anomaly["data"]
        | {
            "resident_id": rid,
            "temperature_c": 38.2,
            "symptoms": ["cough"],
            "grid_id": "G1",
            "building_id": "B01",
            "room": "101",
        }
        == anomaly["data"]
    )
    assert (
        anomaly["data"] | {"tags": ["elderly"], "lat": 31.2, "lon": 121.4} == anomaly["data"]
    )  # the resident's facts, as stored
    assert anomaly["dataschema"] == "urn:firstline:checkin:HealthAnomalyReported:1"
    async with checkin.service.runtime.db.session() as session:
        stored = (
            await session.execute(select(DailyCheckIn.symptoms, DailyCheckIn.fever, DailyCheckIn.revisions))
        ).one()
        history = (await session.execute(select(CheckInSubmission.symptoms, CheckInSubmission.channel))).one()
    assert tuple(stored) == (["cough"], True, 1) and tuple(history) == (["cough"], "self")


async def test_normal_check_in_reports_no_anomaly_and_second_one_updates_the_day(checkin):
    rid = await checkin.register("李雷", "102")
    me = checkin.as_("resident", rid)
    first = await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": 36.5}, headers=me)
    second = await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": 36.7}, headers=me)
    assert first.status_code == second.status_code == 201
    assert second.json()["revisions"] == 2 and second.json()["temperature_c"] == 36.7
    assert len(await checkin.outbox("CheckInSubmitted")) == 2
    assert await checkin.outbox("HealthAnomalyReported") == []


async def test_bad_check_ins_are_refused_and_change_nothing(checkin):
    rid = await checkin.register("韩梅梅", "103")
    me = checkin.as_("resident", rid)
    cases = [
        ({"resident_id": rid, "temperature_c": 45.0}, 422, "measuring error"),
        ({"resident_id": rid, "temperature_c": 33.0}, 422, "measuring error"),
        ({"resident_id": "R-nobody", "temperature_c": 36.5}, 404, "no resident"),
        ({"resident_id": rid, "temperature_c": 36.5, "symptoms": ["itchy"]}, 422, "unknown symptom"),
        ({"resident_id": rid, "temperature_c": 36.5, "date": "2030-01-01"}, 422, "future"),
        ({"resident_id": rid}, 422, "temperature_c"),
    ]
    for body, status, message in cases:
        response = await checkin.client.post("/checkins", json=body, headers=me)
        assert response.status_code == status, (body, response.text)
        assert message in response.text
    assert await checkin.outbox("CheckInSubmitted") == []
    assert (await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": 36.5})).status_code == 401


async def test_a_check_in_body_that_is_not_json_is_refused_as_fastapi_would_word_it(checkin):
    rid = await checkin.register("韩梅梅", "103")
    me = checkin.as_("resident", rid)
    broken = await checkin.client.post(
        "/checkins", content=b'{"resident_id": ', headers={**me, "content-type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid", broken.text
    wrong_type = await checkin.client.post("/checkins", json={"resident_id": rid, "temperature_c": "warm"}, headers=me)
    [error] = wrong_type.json()["detail"]
    assert (
        wrong_type.status_code == 422 and error["loc"] == ["body", "temperature_c"] and error["type"] == "float_parsing"
    )
    as_text = await checkin.client.post(
        "/checkins", content=f"{rid} 36.5", headers={**me, "content-type": "text/plain"}
    )
    assert as_text.status_code == 415 and "application/json" in as_text.json()["detail"]
    assert await checkin.outbox("CheckInSubmitted") == []
    # The body read by hand is still documented.
    body = checkin.app.openapi()["paths"]["/checkins"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["resident_id", "temperature_c"] and "symptoms" in body["properties"]


async def test_building_lead_checks_in_only_for_their_building(checkin):
    inside = await checkin.register("张三", "201", building="B01")
    outside = await checkin.register("李四", "202", building="B02")
    lead = checkin.as_("building_lead", "L-1", building_ids=["B01"])
    ok = await checkin.client.post("/checkins", json={"resident_id": inside, "temperature_c": 36.4}, headers=lead)
    refused = await checkin.client.post("/checkins", json={"resident_id": outside, "temperature_c": 36.4}, headers=lead)
    unknown = await checkin.client.post(
        "/checkins", json={"resident_id": "R-0000000000000000", "temperature_c": 36.4}, headers=lead
    )
    assert ok.status_code == 201 and ok.json()["channel"] == "building_lead"
    # Not yours answers as not found: nothing tells whether, or in which building, the person lives
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["detail"] == unknown.json()["detail"].replace("R-0000000000000000", outside)
    assert "B02" not in refused.text and "B01" not in refused.text


async def test_concurrent_check_ins_share_transactions_and_each_gets_its_own_answer(checkin):
    """The morning peak: many check-ins at once are written in batches (group commit), yet
    each request is answered, refused or counted as a revision exactly as if it were alone."""
    residents = [await checkin.register(f"居民{i}", f"6{i:02d}", building="B01" if i % 2 else "B02") for i in range(24)]
    sizes: list[int] = []
    checkin.service.observe_check_in_batch = sizes.append
    lead = checkin.as_("building_lead", "L-1", building_ids=["B01"])
    requests = [({"resident_id": rid, "temperature_c": 36.5}, checkin.as_("resident", rid)) for rid in residents]
    requests += [
        ({"resident_id": rid, "temperature_c": 38.0}, checkin.admin) for rid in residents[:3]
    ]  # again: revisions
    requests += [
        ({"resident_id": "R-nobody", "temperature_c": 36.5}, checkin.admin),
        ({"resident_id": residents[0], "temperature_c": 36.6}, lead),  # B02: not the lead's building
        ({"resident_id": residents[1], "temperature_c": 36.6}, lead),  # B01
    ]
    responses = await asyncio.gather(
        *(checkin.client.post("/checkins", json=body, headers=who) for body, who in requests)
    )

    assert [r.status_code for r in responses] == [201] * 27 + [404, 404, 201]
    assert "no resident 'R-nobody'" in responses[27].text and f"no resident '{residents[0]}'" in responses[28].text
    assert max(sizes) > 1 and sum(sizes) == len(requests)  # they did share transactions
    revisions = defaultdict(list)
    for response in responses:
        if response.status_code == 201:
            revisions[response.json()["resident_id"]].append(response.json()["revisions"])
    assert {rid: sorted(r) for rid, r in revisions.items()} == {
        rid: [1, 2, 3] if rid == residents[1] else [1, 2] if rid in residents[:3] else [1] for rid in residents
    }
    submitted = await checkin.outbox("CheckInSubmitted")
    assert len(submitted) == 28 and len({e["id"] for e in submitted}) == 28
    assert sorted(e["subject"] for e in await checkin.outbox("HealthAnomalyReported")) == sorted(residents[:3])
    async with checkin.service.runtime.db.session() as session:
        history = (
            await session.execute(
                select(CheckInSubmission.resident_id, func.count()).group_by(CheckInSubmission.resident_id)
            )
        ).all()
    assert sum(count for _, count in history) == 28 and dict(history)[residents[1]] == 3


async def test_sweep_finds_missed_residents_once_and_counts_consecutive_days(checkin):
    present = await checkin.register("在家", "301")
    absent = await checkin.register("未打卡", "302", tags=["living_alone"])
    away = await checkin.register("外出", "303")
    today = checkin.service.today()
    await checkin.client.post(
        f"/residents/{away}/absences",
        json={"from_date": str(today - timedelta(days=1)), "to_date": str(today), "reason": "away"},
        headers=checkin.admin,
    )
    checkin.clock.advance(days=-1)
    yesterday = checkin.service.today()
    await checkin.client.post(
        "/checkins", json={"resident_id": present, "temperature_c": 36.5}, headers=checkin.as_("resident", present)
    )
    checkin.clock.advance(days=1)
    await checkin.client.post(
        "/checkins", json={"resident_id": present, "temperature_c": 36.5}, headers=checkin.as_("resident", present)
    )

    # Residents registered before yesterday's cutoff? They were registered "today" 09:00, so
    # yesterday nobody was expected yet: registering and sweeping are both on the clock.
    assert (await checkin.client.post("/sweeps", json={"date": str(yesterday)}, headers=checkin.admin)).json()[
        "missed"
    ] == 0
    checkin.clock.advance(hours=2)  # past the 10:00 cutoff
    first = await checkin.client.post("/sweeps", json={"date": str(today)}, headers=checkin.admin)
    again = await checkin.client.post("/sweeps", json={"date": str(today)}, headers=checkin.admin)
    assert first.json() == {"date": str(today), "missed": 1, "total_missed": 1}
    assert again.json() == {"date": str(today), "missed": 0, "total_missed": 1}
    [missed] = await checkin.outbox("CheckInMissed")
    assert missed["subject"] == absent
    assert (
        missed["data"]
        | {"resident_id": absent, "consecutive_days": 1, "grid_id": "G1", "building_id": "B01", "date": str(today)}
        == missed["data"]
    )

    checkin.clock.advance(days=1)
    await checkin.client.post("/sweeps", json={"date": str(checkin.service.today())}, headers=checkin.admin)
    second_day = [e for e in await checkin.outbox("CheckInMissed") if e["data"]["date"] == str(checkin.service.today())]
    assert {e["subject"]: e["data"]["consecutive_days"] for e in second_day} == {absent: 2, present: 1, away: 1}


async def test_concurrent_sweeps_emit_one_event_per_resident(checkin):
    for room in range(10):
        await checkin.register(f"居民{room}", f"4{room:02d}")
    checkin.clock.advance(hours=2)
    today = checkin.service.today()
    results = await asyncio.gather(*(checkin.service.sweep(today) for _ in range(4)), return_exceptions=True)
    found = [r.missed for r in results if not isinstance(r, Exception)]
    assert sum(found) == 10, results
    assert len(await checkin.outbox("CheckInMissed")) == 10


async def test_sweep_of_a_future_date_is_refused(checkin):
    response = await checkin.client.post("/sweeps", json={"date": "2030-01-01"}, headers=checkin.admin)
    assert response.status_code == 422 and "has not happened" in response.text
    assert (
        await checkin.client.post("/sweeps", json={"date": "2026-11-21"}, headers=checkin.as_("resident", "R-1"))
    ).status_code == 403


async def test_followups_are_ordered_by_urgency_and_scoped_to_the_workers_grids(checkin):
    fever = await checkin.register("发烧", "501")
    missed_tagged = await checkin.register("孕妇", "502", tags=["pregnant"])
    missed = await checkin.register("普通", "503")
    other_grid = await checkin.register("别的网格", "504", grid="G2")
    await checkin.client.post(
        "/checkins", json={"resident_id": fever, "temperature_c": 38.5}, headers=checkin.as_("resident", fever)
    )
    checkin.clock.advance(hours=2)
    await checkin.client.post("/sweeps", json={"date": str(checkin.service.today())}, headers=checkin.admin)

    worker = checkin.as_("grid_worker", "W-1", grid_ids=["G1"])
    response = await checkin.client.get("/followups", params={"grid_id": "G1"}, headers=worker)
    assert response.status_code == 200
    items = response.json()["followups"]
    assert [i["resident_id"] for i in items] == [fever, missed_tagged, missed]
    assert items[0]["last_temperature_c"] == 38.5 and items[0]["address"] == "B01-1-501"
    assert items[1]["days_missed"] == 1 and items[1]["phone"]
    assert other_grid not in {i["resident_id"] for i in items}
    denied = await checkin.client.get("/followups", params={"grid_id": "G2"}, headers=worker)
    assert denied.status_code == 403


async def test_completion_by_building_and_grid(checkin):
    a = await checkin.register("甲", "601", building="B01")
    await checkin.register("乙", "602", building="B01")
    await checkin.register("丙", "603", building="B02", grid="G2")
    await checkin.client.post(
        "/checkins", json={"resident_id": a, "temperature_c": 36.5}, headers=checkin.as_("resident", a)
    )
    by_building = (
        await checkin.client.get("/stats/completion", params={"by": "building"}, headers=checkin.admin)
    ).json()
    assert {r["building_id"]: (r["checked_in"], r["expected"]) for r in by_building["rows"]} == {
        "B01": (1, 2),
        "B02": (0, 1),
    }
    by_grid = (
        await checkin.client.get(
            "/stats/completion", params={"by": "grid"}, headers=checkin.as_("grid_worker", "W", grid_ids=["G1"])
        )
    ).json()
    assert by_grid["rows"] == [{"grid_id": "G1", "expected": 2, "checked_in": 1, "rate": 0.5}]


async def test_the_register_lists_its_buildings_for_maps_scoped_to_a_grid_workers_grids(checkin):
    await checkin.register("甲", "601", building="B01")
    await checkin.register("乙", "602", building="B01")
    await checkin.register("丙", "603", building="B02", grid="G2")
    everyone = (await checkin.client.get("/buildings", headers=checkin.admin)).json()
    assert [(b["building_id"], b["grid_id"], b["residents"]) for b in everyone] == [("B01", "G1", 2), ("B02", "G2", 1)]
    mine = (await checkin.client.get("/buildings", headers=checkin.as_("grid_worker", "W", grid_ids=["G2"]))).json()
    assert [b["building_id"] for b in mine] == ["B02"]
    refused = await checkin.client.get("/buildings", headers=checkin.as_("volunteer", "V1"))
    assert refused.status_code == 403


async def test_import_csv_reports_rejected_rows_and_is_idempotent(checkin):
    csv = (
        "姓名,楼栋-单元-房号,电话,网格,标签,纬度,经度\n"
        "王芳,B03-2-401,13800000001,G1,老人、独居,31.23,121.47\n"
        ",B03-2-402,13800000002,G1,,,\n"
        "李四,B03-2,13800000003,G1,,,\n"
        "赵六,B03-2-404,abc,G1,,,\n"
        "钱七,B03-2-405,13800000005,G1,vip,,\n"
        "孙八,B03-2-406,13800000006,G2,孕妇,31.2,121.4\n"
    ).encode()
    files = {"file": ("residents.csv", csv, "text/csv")}
    first = (await checkin.client.post("/residents/import", files=files, headers=checkin.admin)).json()
    assert (first["total"], first["imported"], first["unchanged"]) == (6, 2, 0)
    assert [(r["row"], r["reason"].split()[0]) for r in first["rejected"]] == [
        (3, "missing"),
        (4, "address"),
        (5, "phone"),
        (6, "unknown"),
    ]
    again = (await checkin.client.post("/residents/import", files=files, headers=checkin.admin)).json()
    assert (again["imported"], again["unchanged"]) == (0, 2)
    registered = await checkin.outbox("ResidentRegistered")
    assert len(registered) == 2
    assert registered[0]["data"]["tags"] == ["elderly", "living_alone"]


async def test_import_xlsx_and_grid_worker_scope(checkin):
    book = Workbook()
    sheet = book.active
    sheet.append(["name", "building", "unit", "room", "phone", "grid", "tags"])
    sheet.append(["Ann", "B05", 1, 101, 13900000001, "G1", "elderly"])
    sheet.append(["Bob", "B05", 1, 102, 13900000002, "G2", ""])
    content = io.BytesIO()
    book.save(content)
    files = {"file": ("residents.xlsx", content.getvalue(), "application/octet-stream")}
    report = (
        await checkin.client.post(
            "/residents/import", files=files, headers=checkin.as_("grid_worker", "W", grid_ids=["G1"])
        )
    ).json()
    assert report["imported"] == 1
    assert report["rejected"] == [{"row": 3, "reason": "grid G2 is not one of your grids"}]
    bad = await checkin.client.post(
        "/residents/import", files={"file": ("r.pdf", b"%PDF", "application/pdf")}, headers=checkin.admin
    )
    assert bad.status_code == 422 and ".csv or .xlsx" in bad.text


async def test_sampling_round_flags_lagging_buildings_once(checkin):
    done = [await checkin.register(f"采样{i}", f"70{i}", building="B07") for i in range(2)]
    await checkin.register("未采样", "710", building="B08")
    deadline = checkin.clock.now() + timedelta(hours=3)
    opened = await checkin.client.post(
        "/sampling/rounds",
        json={
            "name": "第3轮核酸",
            "building_ids": ["B07", "B08"],
            "deadline": deadline.isoformat(),
            "min_completion_rate": 0.9,
        },
        headers=checkin.admin,
    )
    assert opened.status_code == 201, opened.text
    round_id = opened.json()["round_id"]
    recorded = await checkin.client.post(
        f"/sampling/rounds/{round_id}/samples", json={"resident_ids": done}, headers=checkin.admin
    )
    assert recorded.json() == {"recorded": 2, "already": 0}
    assert (await checkin.client.post("/sampling/evaluate", headers=checkin.admin)).json() == {
        "lagging_flagged": 0
    }  # not due yet
    checkin.clock.advance(hours=4)
    assert (await checkin.client.post("/sampling/evaluate", headers=checkin.admin)).json() == {"lagging_flagged": 1}
    assert (await checkin.client.post("/sampling/evaluate", headers=checkin.admin)).json() == {"lagging_flagged": 0}
    [lag] = await checkin.outbox("SamplingLagging")
    assert lag["data"] | {"round_id": round_id, "building_id": "B08", "completion_rate": 0.0} == lag["data"]
    status = (await checkin.client.get(f"/sampling/rounds/{round_id}", headers=checkin.admin)).json()
    assert {b["building_id"]: b["rate"] for b in status["buildings"]} == {"B07": 1.0, "B08": 0.0}
    [latest] = (await checkin.client.get("/sampling/rounds", headers=checkin.admin)).json()
    assert latest == status  # the latest rounds, each as its own status reads
    worker = checkin.as_("grid_worker", "W", grid_ids=["G1"])
    assert (await checkin.client.get("/sampling/rounds", headers=worker)).status_code == 403


async def test_register_twice_is_a_conflict(checkin):
    body = {"name": "重复", "phone": "13800000000", "grid_id": "G1", "building_id": "B01", "unit": "1", "room": "999"}
    assert (await checkin.client.post("/residents", json=body, headers=checkin.admin)).status_code == 201
    again = await checkin.client.post("/residents", json=body, headers=checkin.admin)
    assert again.status_code == 409 and "already registered" in again.text
    worker = checkin.as_("grid_worker", "W", grid_ids=["G2"])
    assert (await checkin.client.post("/residents", json={**body, "room": "998"}, headers=worker)).status_code == 403


async def test_residents_are_expected_from_the_first_cutoff_after_registration(checkin):
    checkin.clock.advance(hours=5)  # 14:00 local, after the 10:00 cutoff
    late = await checkin.register("下午登记", "801")
    csv = "姓名,楼栋-单元-房号,电话,网格,登记日期\n早登记,B01-1-802,13800000008,G1,2026-11-20\n未来,B01-1-803,13800000009,G1,2030-01-01\n".encode()
    report = (
        await checkin.client.post(
            "/residents/import", files={"file": ("r.csv", csv, "text/csv")}, headers=checkin.admin
        )
    ).json()
    assert report["imported"] == 1 and "future" in report["rejected"][0]["reason"]
    result = (await checkin.client.post("/sweeps", json={"date": "2026-11-21"}, headers=checkin.admin)).json()
    assert result["missed"] == 1
    [missed] = await checkin.outbox("CheckInMissed")
    assert missed["subject"] != late


async def test_the_cutoff_job_sweeps_in_its_window_and_late_check_ins_leave_the_followups(checkin):
    late = await checkin.register("迟到", "951")
    assert await checkin.service.sweep_at_cutoff() is None  # 09:00: before the cutoff
    checkin.clock.advance(hours=1, minutes=30)  # 10:30: in the window
    assert (await checkin.service.sweep_at_cutoff()).missed == 1
    worker = checkin.as_("grid_worker", "W", grid_ids=["G1"])
    assert [
        i["resident_id"]
        for i in (await checkin.client.get("/followups", params={"grid_id": "G1"}, headers=worker)).json()["followups"]
    ] == [late]
    await checkin.client.post(
        "/checkins", json={"resident_id": late, "temperature_c": 36.5}, headers=checkin.as_("resident", late)
    )
    assert (await checkin.client.get("/followups", params={"grid_id": "G1"}, headers=worker)).json()["followups"] == []
    checkin.clock.advance(hours=3)  # 13:30: after the window the job leaves today alone
    await checkin.register("下午登记的人", "952", registered_on="2026-11-20")
    assert await checkin.service.sweep_at_cutoff() is None
