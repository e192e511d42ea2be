"""A kill between sending and recording: messaging runs as its own process; the gateway
holds the first call until the process is killed (SIGKILL) mid-send. After a restart the
claim's lease runs out and the message goes again with the same webhook-id and
idempotency key, which is what the gateway de-duplicates on: the resident gets it once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from common import envelope as ce
from common.db import Database
from common.events.checkin import ResidentRegistered
from common.events.dispatch import RequestFulfilled, RequestRaised
from common.topics import CHECKIN_EVENTS, CHECKIN_RESIDENTS, COMMAND_EVENTS, DISPATCH_EVENTS, TIMEBANK_EVENTS
from conftest import SECRET
from messaging.models import Contact, Message
from support import kafka_client, start_groups_at_the_end, unique, wait_for

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_kill_between_send_and_record_reaches_the_resident_once(kafka, gateway, tmp_path):
    group = unique("messaging-crash")
    await start_groups_at_the_end(
        kafka, {group: [DISPATCH_EVENTS, COMMAND_EVENTS, TIMEBANK_EVENTS, CHECKIN_EVENTS, CHECKIN_RESIDENTS]}
    )
    database = f"sqlite+aiosqlite:///{tmp_path}/messaging.db"
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "FIRSTLINE_ENV_FILE": str(tmp_path / "none.env"),
           "MESSAGING_DATABASE_URL": database, "MESSAGING_CONSUMER_GROUP": group, "MESSAGING_GATEWAY_SECRET": SECRET,
           "MESSAGING_SMS_URL": gateway.url("sms"), "MESSAGING_VOICE_URL": gateway.url("voice"),
           "MESSAGING_CHAT_URL": gateway.url("chat"), "MESSAGING_JOBS_INTERVAL_S": "0.2", "MESSAGING_SEND_INTERVAL_S": "0.1",
           "MESSAGING_SEND_LEASE_S": "2", "MESSAGING_QUIET_HOURS_START": "00:00", "MESSAGING_QUIET_HOURS_END": "00:00",
           "MESSAGING_REMINDER_TIME": "00:00", "MESSAGING_CUTOFF_TIME": "00:00"}  # fmt: skip

    def start(n: int) -> subprocess.Popen:
        log = open(tmp_path / f"messaging-{n}.log", "w")  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "messaging.main:app_from_env", "--port", str(_free_port())],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    resident, request, phone = unique("R"), unique("Q"), "13800000401"
    gateway.hold, gateway.hold_for = asyncio.Event(), resident
    first = start(1)
    second = None
    db = Database(database)

    async def known() -> bool:
        try:
            async with db.session() as session:
                return (await session.execute(select(Contact).where(Contact.person_id == resident))).first() is not None
        except Exception:  # noqa: BLE001 - the tables are not there yet
            return False

    now = datetime.now(UTC)
    producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
    await producer.start()
    try:
        registered = ResidentRegistered(
            resident_id=resident, community_id="C1", grid_id="G1", building_id="B01", phone=phone
        )
        await producer.send_and_wait(CHECKIN_RESIDENTS, ce.encode(ce.wrap(registered, at=now)), key=resident.encode())
        await wait_for(
            known, timeout=60, what="messaging to learn the resident's phone"
        )  # before their request, as in life
        for topic, key, event in (
            (
                DISPATCH_EVENTS,
                request,
                RequestRaised(
                    request_id=request, resident_id=resident, category="groceries", priority="normal", due_by=now
                ),
            ),
            (DISPATCH_EVENTS, request, RequestFulfilled(request_id=request, volunteer_id="V1", service_minutes=20)),
        ):
            await producer.send_and_wait(topic, ce.encode(ce.wrap(event, at=now)), key=key.encode())
        await wait_for(lambda: any(c.body["to"]["id"] == resident for c in gateway.calls), timeout=60,
                       what=f"the first send to reach the gateway (log: {tmp_path / 'messaging-1.log'})")  # fmt: skip
        first.send_signal(signal.SIGKILL)  # mid-send: the gateway has the message, the record does not know
        first.wait(timeout=15)
        hold, gateway.hold = gateway.hold, None
        hold.set()
        async with db.session() as session:
            [before] = (await session.execute(select(Message).where(Message.recipient_id == resident))).scalars().all()
        assert before.status == "queued" and before.sent_at is None  # the send was never recorded

        second = start(2)

        async def recorded() -> Message | None:
            async with db.session() as session:
                row = (await session.execute(select(Message).where(Message.recipient_id == resident))).scalar_one()
            return row if row.status == "accepted" else None

        after = await wait_for(
            recorded, timeout=60, what=f"the resend after restart (log: {tmp_path / 'messaging-2.log'})"
        )
        calls = [c for c in gateway.calls if c.body["to"]["id"] == resident]
        assert len(calls) == 2  # sent, killed before recording, sent again ...
        assert {c.webhook_id for c in calls} == {after.message_id}  # ... with the same webhook-id
        assert {c.body["idempotency_key"] for c in calls} == {after.idempotency_key}
        assert len(gateway.to(resident)) == 1  # which the gateway de-duplicates on: one message reaches the resident
    finally:
        await producer.stop()
        await db.dispose()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
