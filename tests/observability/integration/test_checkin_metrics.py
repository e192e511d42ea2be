"""Check-in figures on /metrics after a morning of real requests, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock
from support import bearer

START = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai; cutoff 10:00


def figures(text: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.fixture
async def app_and_client(database_url):
    clock = ManualClock(START)
    app = create_app(CheckinSettings(database_url=database_url, jobs_interval_s=0, kafka_enabled=False), clock=clock)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://checkin") as client:
            yield app, client, clock


async def test_completion_misses_and_fevers_by_building_and_grid(app_and_client) -> None:
    app, client, clock = app_and_client
    admin = bearer("admin", "admin-1")
    homes = [("G1", "B01", "101"), ("G1", "B01", "102"), ("G1", "B01", "103"), ("G2", "B02", "201")]
    ids = []
    for n, (grid, building, room) in enumerate(homes):
        body = {"name": f"居民{n}", "phone": "13800000000", "grid_id": grid, "building_id": building,
                "unit": "1", "room": room, "lat": 31.2 + n * 0.0001, "lon": 121.4}  # fmt: skip
        response = await client.post("/residents", json=body, headers=admin)
        assert response.status_code == 201, response.text
        ids.append(response.json()["resident_id"])
    for resident_id, temperature in ((ids[0], 36.6), (ids[1], 38.2)):
        response = await client.post(
            "/checkins", json={"resident_id": resident_id, "temperature_c": temperature, "symptoms": []}, headers=admin
        )
        assert response.status_code in (200, 201), response.text

    await app.state.runtime.run_job("metrics")
    before = (await client.get("/metrics")).text
    assert figures(before, "firstline_checkin_seconds_since_cutoff")[()] == -3600
    assert figures(before, "firstline_checkin_missed_residents") == {(("grid_id", "G1"),): 0, (("grid_id", "G2"),): 0}

    clock.advance(hours=2, minutes=5)  # 11:05, an hour after the cutoff
    response = await client.post("/sweeps", json={"date": "2026-11-21"}, headers=admin)
    assert response.status_code == 200, response.text
    await app.state.runtime.run_job("metrics")
    text = (await client.get("/metrics")).text

    b01 = (("building_id", "B01"), ("grid_id", "G1"))
    assert figures(text, "firstline_checkin_expected_residents")[b01] == 3
    assert figures(text, "firstline_checkin_checked_in_residents")[b01] == 2
    assert figures(text, "firstline_checkin_building_completion_ratio")[b01] == pytest.approx(2 / 3, abs=1e-3)
    assert figures(text, "firstline_checkin_grid_completion_ratio") == {
        (("grid_id", "G1"),): pytest.approx(2 / 3, abs=1e-3),
        (("grid_id", "G2"),): 0,
    }
    assert figures(text, "firstline_checkin_seconds_since_cutoff")[()] == 3900
    assert figures(text, "firstline_checkin_missed_residents") == {(("grid_id", "G1"),): 1, (("grid_id", "G2"),): 1}
    assert figures(text, "firstline_checkin_anomalies")[(("grid_id", "G1"), ("kind", "fever"))] == 1
    heat = figures(text, "firstline_checkin_building_followups")
    assert {dict(k)["building_id"]: v for k, v in heat.items()} == {"B01": 2, "B02": 1}  # one miss + one fever in B01
    assert all(dict(k)["lat"].startswith("31.20") and dict(k)["lon"] == "121.40000" for k in heat)
    assert not any("resident" in label for k in heat for label, _ in k)
