"""The loop closed through the real broker: the command center runs as its own process with
its own database; messaging runs in-process with a real local gateway. A resident's
complaint is resolved, messaging invites feedback, the resident texts "2" and the ticket
reopens; resolved again, a "5" closes it. The same Kafka event delivered twice sends one
message, and a reply the gateway posts twice changes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from common import envelope as ce
from common.clock import ManualClock
from common.events.checkin import ResidentRegistered
from common.events.command import TicketResolved
from common.topics import (
    CHECKIN_EVENTS,
    CHECKIN_RESIDENTS,
    COMMAND_EVENTS,
    DISPATCH_EVENTS,
    MESSAGING_EVENTS,
    SUPPLIES_EVENTS,
    TIMEBANK_EVENTS,
)
from conftest import Harness, settings_for
from messaging.main import create_app
from support import bearer, kafka_client, start_groups_at_the_end, unique, wait_for

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def command(kafka, tmp_path) -> AsyncIterator[str]:
    port, group = _free_port(), unique("command-test")
    await start_groups_at_the_end(
        kafka, {group: [CHECKIN_EVENTS, CHECKIN_RESIDENTS, SUPPLIES_EVENTS, DISPATCH_EVENTS, MESSAGING_EVENTS]}
    )
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "FIRSTLINE_ENV_FILE": str(tmp_path / "none.env"),
           "COMMAND_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/command.db", "COMMAND_CONSUMER_GROUP": group,
           "COMMAND_JOBS_INTERVAL_S": "0", "COMMAND_OUTBOX_POLL_INTERVAL_S": "0.1"}  # fmt: skip
    log = open(tmp_path / "command.log", "w")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "command.main:app_from_env", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
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
        await wait_for(ready, timeout=60, what=f"command to be ready (log: {tmp_path / 'command.log'})")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture
async def live(kafka, gateway, tmp_path) -> AsyncIterator[Harness]:
    group = unique("messaging-test")
    await start_groups_at_the_end(
        kafka, {group: [DISPATCH_EVENTS, COMMAND_EVENTS, TIMEBANK_EVENTS, CHECKIN_EVENTS, CHECKIN_RESIDENTS]}
    )
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path}/messaging.db", gateway, kafka_enabled=True, start_consumers=True,
                            kafka_bootstrap_servers=kafka, consumer_group=group, outbox_poll_interval_s=0.1,
                            quiet_hours_start=time(0), quiet_hours_end=time(0))  # fmt: skip  # the wall clock's hour, whatever it is
    app = create_app(settings)  # the system clock, like command's
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://messaging") as client:
            harness = Harness(app, ManualClock(datetime.now(UTC)), client, gateway)
            await wait_for(lambda: harness.runtime.broker_connected, what="messaging to connect to Kafka")
            yield harness


async def test_a_2_reopens_and_a_5_closes_through_the_broker(kafka, command, live):
    now = datetime.now(UTC)
    resident, phone = unique("R"), "13800000301"
    staff = bearer("command", "cmd-duty")
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
    await producer.start()
    try:
        registered = ResidentRegistered(
            resident_id=resident, community_id="C1", grid_id="G1", building_id="B01", name="王芳", phone=phone
        )
        await producer.send_and_wait(CHECKIN_RESIDENTS, ce.encode(ce.wrap(registered, at=now)), key=resident.encode())

        async with httpx.AsyncClient(base_url=command, timeout=20) as c:
            opened = await c.post(
                "/tickets",
                json={"category": "complaint", "description": "楼道灯坏了"},
                headers=bearer("resident", resident),
            )
            assert opened.status_code == 201, opened.text
            ticket = opened.json()["ticket_id"]

            async def resolve() -> None:
                assert (await c.post(f"/tickets/{ticket}/acknowledge", headers=staff)).status_code == 200
                assert (
                    await c.post(f"/tickets/{ticket}/resolve", json={"resolution": "换了灯泡"}, headers=staff)
                ).status_code == 200

            async def invitations() -> list:
                await live.runtime.run_job("messages-send")
                return live.gateway.to(resident, "feedback_invitation")

            async def stage() -> str:
                return (await c.get(f"/tickets/{ticket}", headers=staff)).json()["stage"]

            await resolve()
            [_first] = await wait_for(invitations, timeout=30, what="the feedback invitation at the gateway")
            reply_id = unique("gw")
            assert (await live.reply("2", phone, reply_id)).json()["outcome"] == "feedback"
            await wait_for(lambda: _is(stage, "reopened"), timeout=30, what="command to reopen the ticket")
            assert (await live.reply("2", phone, reply_id)).json()["duplicate"] is True  # the gateway posts it again

            await resolve()
            await wait_for(lambda: _count(invitations, 2), timeout=30, what="the second invitation")
            assert (await live.reply("5", phone, unique("gw"))).json()["outcome"] == "feedback"
            await wait_for(lambda: _is(stage, "closed"), timeout=30, what="command to close the ticket")
            history = (await c.get(f"/tickets/{ticket}", headers=staff)).json()
            assert history["satisfaction"] == 5

        # The same TicketResolved delivered again by the broker sends nothing more.
        again = TicketResolved(ticket_id=ticket, stage="resolved", owner="cmd-duty", at=now)
        envelope = ce.wrap(again, at=now)
        sentinel_resident = unique("R")
        for value in (ce.encode(envelope), ce.encode(envelope)):
            await producer.send_and_wait(COMMAND_EVENTS, value, key=ticket.encode())
        await _redelivered_once(live, producer, sentinel_resident)
        assert (
            len(live.gateway.to(resident, "feedback_invitation")) == 3
        )  # two from command, one from the replayed event
    finally:
        await producer.stop()


async def _redelivered_once(live, producer, sentinel: str) -> None:
    """Wait until messaging has applied everything sent before a sentinel (a resident it must learn)."""
    registered = ResidentRegistered(
        resident_id=sentinel, community_id="C1", grid_id="G1", building_id="B01", phone="13800000399"
    )
    await producer.send_and_wait(
        CHECKIN_RESIDENTS, ce.encode(ce.wrap(registered, at=datetime.now(UTC))), key=sentinel.encode()
    )

    async def known() -> bool:
        await live.runtime.run_job("messages-send")
        async with live.runtime.db.session() as session:
            from messaging.models import Contact

            return await session.get(Contact, sentinel) is not None

    await wait_for(known, timeout=30, what="messaging to learn the sentinel resident")
    await live.runtime.run_job("messages-send")


async def _is(stage, expected: str) -> bool:
    return await stage() == expected


async def _count(invitations, n: int) -> bool:
    return len(await invitations()) >= n
