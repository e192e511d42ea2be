"""A check-in day through the running stack, read from Kafka as a partner department would."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from common.clock import local_date
from support import TopicReader, wait_for

pytestmark = pytest.mark.e2e
SHANGHAI_TODAY = lambda: local_date(datetime.now(UTC), __import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def register_csv(building: str, yesterday: str) -> bytes:
    rows = [
        f"发烧者,{building}-1-101,13800000001,GE,老人,31.23,121.47,{yesterday}",
        f"正常者,{building}-1-102,13800000002,GE,,31.23,121.47,{yesterday}",
        f"未打卡,{building}-1-103,13800000003,GE,独居,31.23,121.47,{yesterday}",
        f"坏电话,{building}-1-104,abc,GE,,,,",
    ]
    return ("姓名,楼栋-单元-房号,电话,网格,标签,纬度,经度,登记日期\n" + "\n".join(rows) + "\n").encode()


async def test_import_check_ins_and_sweep_reach_partners_as_cloudevents(stack):
    building = f"E{uuid.uuid4().hex[:6]}"
    today = SHANGHAI_TODAY()
    admin = stack.token("admin", "e2e-admin")
    async with (
        TopicReader(stack.kafka, "checkin.events.v1") as partner,
        TopicReader(stack.kafka, "checkin.residents.v1") as residents,
        stack.client("checkin") as checkin,
    ):
        report = (
            await checkin.post(
                "/residents/import",
                files={"file": ("r.csv", register_csv(building, str(today - timedelta(days=1))))},
                headers=admin,
            )
        ).json()
        assert report["imported"] == 3 and report["rejected"][0]["row"] == 5
        ids = {}
        for r in (await checkin.get("/followups", params={"grid_id": "GE"}, headers=admin)).json()["followups"]:
            ids[r["name"]] = r["resident_id"]
        assert ids == {}  # nobody to follow up before anything happened

        registered = await residents.wait_for_events("ResidentRegistered", 3)
        ids = {e["data"]["name"]: e["subject"] for e in registered if e["data"]["building_id"] == building}
        fever, normal, missing = ids["发烧者"], ids["正常者"], ids["未打卡"]

        for rid, temperature in ((fever, 38.6), (normal, 36.5)):
            response = await checkin.post(
                "/checkins",
                json={"resident_id": rid, "temperature_c": temperature},
                headers=stack.token("resident", rid),
            )
            assert response.status_code == 201, response.text
        swept = (await checkin.post("/sweeps", json={"date": str(today)}, headers=admin)).json()
        assert swept["missed"] >= 1

        await partner.wait_for_events("HealthAnomalyReported", 1)
        await wait_for(
            lambda: _has(partner, "CheckInMissed", missing), what="CheckInMissed for the resident who forgot"
        )
        # Partitions are read in no particular order: an event committed before the sweep's
        # may still be on its way. All four, then exactly these four (and the three registrations).
        await wait_for(
            lambda: _events_about(partner, ids.values(), 4), what="the four check-in events about the three residents"
        )

    mine = [r for r in [*partner.records, *residents.records] if json.loads(r.value)["subject"] in ids.values()]
    for record in mine:
        event = json.loads(record.value)
        assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
        assert record.key.decode() == event["subject"]
        assert event["specversion"] == "1.0" and event["source"] == "/firstline/checkin"
        assert event["dataschema"] == f"urn:firstline:checkin:{event['type']}:1"
        assert datetime.fromisoformat(event["time"]).tzinfo is not None
    types = sorted(json.loads(r.value)["type"] for r in mine)
    assert types == sorted(
        ["ResidentRegistered"] * 3 + ["CheckInSubmitted"] * 2 + ["HealthAnomalyReported", "CheckInMissed"]
    )
    [anomaly] = [json.loads(r.value)["data"] for r in mine if json.loads(r.value)["type"] == "HealthAnomalyReported"]
    assert anomaly["resident_id"] == fever and anomaly["temperature_c"] == 38.6 and anomaly["building_id"] == building
    [missed] = [json.loads(r.value)["data"] for r in mine if json.loads(r.value)["type"] == "CheckInMissed"]
    assert missed == missed | {"resident_id": missing, "consecutive_days": 1, "grid_id": "GE", "date": str(today)}


async def _events_about(reader: TopicReader, subjects, count: int) -> bool:
    await reader.poll()
    return sum(e.get("subject") in subjects for e in reader.events()) >= count


async def _has(reader: TopicReader, type_: str, subject: str) -> bool:
    await reader.poll()
    return any(e["subject"] == subject for e in reader.events(type_))


async def test_requests_answer_while_kafka_is_down_and_every_event_arrives_once_after(stack):
    """The outbox promise, with the real broker stopped and started again."""
    building = f"K{uuid.uuid4().hex[:6]}"
    admin = stack.token("admin", "e2e-admin")
    kafka = [str(ROOT / "deploy/kafka/kafka.sh")]
    async with (
        TopicReader(stack.kafka, "checkin.events.v1") as before,
        TopicReader(stack.kafka, "checkin.residents.v1") as before_residents,
    ):
        pass  # where the topics end now: what follows is this test's
    subprocess.run([*kafka, "stop"], check=True, capture_output=True)
    try:
        async with stack.client("checkin") as checkin:
            names = [f"离线{i}" for i in range(5)]
            ids = []
            for i, name in enumerate(names):
                body = {
                    "name": name,
                    "phone": "13800000000",
                    "grid_id": "GK",
                    "building_id": building,
                    "unit": "1",
                    "room": str(100 + i),
                }
                response = await checkin.post("/residents", json=body, headers=admin)
                assert response.status_code == 201, response.text
                ids.append(response.json()["resident_id"])
                response = await checkin.post(
                    "/checkins", json={"resident_id": ids[-1], "temperature_c": 36.6}, headers=admin
                )
                assert response.status_code == 201, response.text
            # HTTP stays ready (the database answers); the pipeline says Kafka is away
            assert (await checkin.get("/readyz")).status_code == 200
            pipeline = await checkin.get("/pipelinez")
            assert pipeline.status_code == 503 and pipeline.json()["kafka"] is False
    finally:
        subprocess.run([*kafka, "start"], check=True, capture_output=True)
    async with (
        TopicReader(stack.kafka, "checkin.events.v1", start=before.starts) as reader,
        TopicReader(stack.kafka, "checkin.residents.v1", start=before_residents.starts) as residents,
    ):

        async def all_arrived() -> bool:
            await reader.poll()
            await residents.poll()
            return len([e for e in [*reader.events(), *residents.events()] if e["subject"] in ids]) >= 10

        await wait_for(all_arrived, timeout=90, what="the 10 events committed while Kafka was down")
        await wait_for(lambda: _settled(reader), timeout=10, what="no further records")
        await wait_for(lambda: _settled(residents), timeout=10, what="no further registrations")
    # The relay is at least once (a kill between publish and mark-sent sends a batch again):
    # the guarantee is every event once per id after deduplication, as consumers' inboxes do.
    events = {e["id"]: e for e in [*reader.events(), *residents.events()] if e["subject"] in ids}
    assert sorted(e["type"] for e in events.values()) == ["CheckInSubmitted"] * 5 + ["ResidentRegistered"] * 5


async def _settled(reader: TopicReader) -> bool:
    before = len(reader.records)
    await reader.poll()
    return len(reader.records) == before
