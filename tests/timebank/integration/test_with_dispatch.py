"""End to end with the real dispatch service (its own process and database) over the real
broker: a fulfilled request credits the volunteer; hours redeemed for a parent become a
request in dispatch, and cancelling it there refunds the hours here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from common import envelope as ce
from common.clock import ManualClock
from common.events.checkin import ResidentRegistered
from common.topics import CHECKIN_RESIDENTS
from conftest import Harness
from support import bearer, kafka_client, start_groups_at_the_end, unique, wait_for
from timebank.main import create_app
from timebank.settings import TimebankSettings

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def dispatch(kafka, tmp_path) -> AsyncIterator[str]:
    port = _free_port()
    group = unique("dispatch-test")
    # Start where the topics end now: the broker's history is not this test's business.
    await start_groups_at_the_end(kafka, {group: ["checkin.residents.v1", "supplies.events.v1", "timebank.events.v1"]})
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DISPATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/dispatch.db",
        "DISPATCH_CONSUMER_GROUP": group,
        "DISPATCH_JOBS_INTERVAL_S": "0",
        "DISPATCH_OUTBOX_POLL_INTERVAL_S": "0.1",
    }
    log = open(tmp_path / "dispatch.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "dispatch.main:app_from_env", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                # /readyz is the database; /pipelinez says when Kafka is connected too
                ready = (await client.get(f"{url}/readyz")).status_code == 200
                return ready and (await client.get(f"{url}/pipelinez")).json()["kafka"]
        except httpx.HTTPError:
            return False

    try:
        await wait_for(ready, timeout=60, what=f"dispatch to be ready (log: {tmp_path / 'dispatch.log'})")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture
async def timebank_live(kafka, tmp_path) -> AsyncIterator[Harness]:
    clock = ManualClock(datetime.now(UTC))
    settings = TimebankSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/timebank.db",
        kafka_bootstrap_servers=kafka,
        consumer_group=unique("timebank-test"),
        jobs_interval_s=0,
        outbox_poll_interval_s=0.1,
    )
    app = create_app(settings)  # the system clock, like dispatch's
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://timebank") as client:
            harness = Harness(app, clock, client)
            await wait_for(lambda: harness.runtime.broker_connected, what="the time bank to connect to Kafka")
            yield harness


async def test_fulfil_credits_and_a_cancelled_redemption_is_refunded(kafka, dispatch, timebank_live):
    tb = timebank_live
    now = datetime.now(UTC)
    staff = bearer("dispatcher", "dispatcher-1")
    parent, volunteer = unique("R"), unique("V")

    # The parent is a resident checkin registered: dispatch learns of them from Kafka.
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
    await producer.start()
    try:
        registered = ResidentRegistered(
            resident_id=parent,
            community_id="C1",
            grid_id="G1",
            building_id="B01",
            tags=["elderly"],
            unit="1",
            room="101",
            name="Mum",
            phone="13800000000",
            lat=31.2305,
            lon=121.4738,
        )
        await producer.send_and_wait(CHECKIN_RESIDENTS, ce.encode(ce.wrap(registered, at=now)), key=parent.encode())
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=dispatch, timeout=20) as d:
        joined = await d.post(
            "/volunteers",
            json={
                "volunteer_id": volunteer,
                "name": "Xiao Li",
                "group": "errands",
                "lat": 31.2306,
                "lon": 121.4739,
                "capacity": 5,
                "phone": "13900000000",
            },
            headers=staff,
        )
        assert joined.status_code == 201, joined.text

        async def raised():
            response = await d.post(
                "/requests", json={"resident_id": parent, "category": "groceries", "details": "rice"}, headers=staff
            )
            return response.json() if response.status_code == 201 else None

        request = await wait_for(raised, timeout=60, interval=0.5, what="dispatch to know the resident from Kafka")
        assert request["volunteer_id"] == volunteer, request
        done = await d.post(
            f"/requests/{request['request_id']}/fulfil",
            json={"volunteer_id": volunteer, "service_minutes": 45},
            headers=bearer("volunteer", volunteer),
        )
        assert done.status_code == 200, done.text

        async def credited():
            try:
                return (await tb.service.balance(volunteer))["hours"] == 0.75
            except Exception:  # noqa: BLE001 - the account opens with the first credit
                return False

        await wait_for(credited, timeout=30, what="the volunteer's 0.75 h from RequestFulfilled")

        # The volunteer spends half an hour on groceries for their parent.
        await tb.member(parent, kind="resident", name="Mum")
        linked = await tb.client.post(
            f"/members/{volunteer}/family", json={"relative_id": parent, "relation": "parent"}, headers=tb.staff
        )
        assert linked.status_code == 201, linked.text
        spent = await tb.client.post(
            "/redemptions",
            json={
                "member_id": volunteer,
                "hours": 0.5,
                "purpose": "groceries",
                "details": "oil and flour",
                "for_member_id": parent,
            },
            headers=bearer("volunteer", volunteer),
        )
        assert spent.status_code == 201, spent.text
        redemption = spent.json()
        assert (await tb.service.balance(volunteer))["hours"] == 0.25

        async def raised_in_dispatch():
            response = await d.get(f"/requests/{redemption['request_id']}", headers=staff)
            return response.json() if response.status_code == 200 else None

        raised_for_parent = await wait_for(
            raised_in_dispatch, timeout=30, what="dispatch to raise the redeemed request"
        )
        assert raised_for_parent["resident_id"] == parent

        cancelled = await d.post(
            f"/requests/{redemption['request_id']}/cancel", json={"reason": "shop closed"}, headers=staff
        )
        assert cancelled.status_code == 200, cancelled.text

    async def refunded():
        return (await tb.service.redemption(redemption["redemption_id"])).status == "refunded"

    await wait_for(refunded, timeout=30, what="the refund after dispatch cancelled the request")
    assert (await tb.service.balance(volunteer))["hours"] == 0.75
    assert (await tb.service.audit())["balanced"]
