"""Reminders through the real webhook adapter to a local HTTP gateway; migrations match models."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common.migrations import pending_changes
from common.notify import WebhookNotifier


class Gateway:
    """A local SMS/voice gateway: records what it is sent; can be told to fail."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail_next = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if gateway.fail_next:
                    gateway.fail_next -= 1
                    self.send_response(503)
                else:
                    gateway.received.append(body)
                    self.send_response(202)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    thread = threading.Thread(target=gw.server.serve_forever, daemon=True)
    thread.start()
    yield gw
    gw.server.shutdown()


@pytest.fixture
async def reminding(checkin_app, gateway):
    async with checkin_app(notifier_url=gateway.url) as harness:
        yield harness


async def test_reminders_go_to_the_gateway_once_voice_for_the_elderly_and_failures_are_retried(reminding, gateway):
    elderly = await reminding.register("老人家", "901", tags=["elderly"])
    young = await reminding.register("年轻人", "902")
    done = await reminding.register("已打卡", "903")
    await reminding.client.post("/checkins", json={"resident_id": done, "temperature_c": 36.5}, headers=reminding.as_("resident", done))
    assert isinstance(reminding.service.notifier, WebhookNotifier)

    gateway.fail_next = 1  # the gateway is briefly down for one of them
    first = await reminding.service.remind_before_cutoff()  # 09:00 local: between reminder time and cutoff
    assert first == {"sent": 1, "failed": 1}
    second = await reminding.service.remind_before_cutoff()  # the failed one is retried, the sent one is not
    assert second == {"sent": 1, "failed": 0}
    assert await reminding.service.remind_before_cutoff() == {"sent": 0, "failed": 0}

    by_resident = {body["to"]["id"]: body for body in gateway.received}
    assert set(by_resident) == {elderly, young}
    assert by_resident[elderly]["channel"] == "voice" and by_resident[young]["channel"] == "sms"
    body = by_resident[young]
    assert body["kind"] == "checkin_reminder" and body["to"]["phone"] == "13800000000"
    assert body["idempotency_key"].startswith(f"checkin_reminder:{young}:") and "10:00" in body["text"]

    reminding.clock.advance(hours=2)  # after the cutoff nobody is reminded any more
    assert await reminding.service.remind_before_cutoff() is None


async def test_migrations_create_exactly_the_models_schema(checkin):
    """The app ran Alembic's migrations at start-up; the models must not differ from them."""
    async with checkin.runtime.db.engine.connect() as conn:
        changes = await conn.run_sync(pending_changes)
    assert changes == [], f"models differ from migrations (run `firstline migrations revision checkin -m ...`): {changes}"
