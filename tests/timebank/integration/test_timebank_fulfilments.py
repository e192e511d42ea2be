"""The time bank credits only fulfilments of requests it saw raised, and long self-reported
service waits for staff approval before any credit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from events import record

from common.errors import Invalid
from common.events.dispatch import RequestFulfilled, RequestRaised


def raised(request_id: str, clock, category: str = "groceries") -> RequestRaised:
    return RequestRaised(
        request_id=request_id,
        resident_id="R1",
        category=category,
        priority="normal",
        due_by=clock.now() + timedelta(hours=4),
    )


async def test_a_fulfilment_of_a_request_never_raised_credits_nothing_and_opens_no_account(timebank):
    # A consumer dead-letters what the use case refuses (the Kafka tests hold that path)
    with pytest.raises(Invalid, match="never raised"):
        await timebank.service.credit_fulfilled(
            RequestFulfilled(request_id="REQ-forged", volunteer_id="V-x", service_minutes=30)
        )
    assert await timebank.outbox("HoursCredited") == []
    assert (await timebank.client.get("/members/V-x/balance", headers=timebank.staff)).status_code == 404


async def test_minutes_over_the_cap_wait_for_staff_approval(timebank):
    consumer = timebank.app.state.consumer
    first, _ = record(raised("REQ-1", timebank.clock), timebank.clock.now())
    long, _ = record(
        RequestFulfilled(request_id="REQ-1", volunteer_id="V1", service_minutes=1440), timebank.clock.now()
    )
    await consumer.handle([first, long])
    assert await timebank.outbox("HoursCredited") == []
    waiting = (await timebank.client.get("/fulfilments", headers=timebank.staff)).json()["fulfilments"]
    assert [(w["request_id"], w["volunteer_id"], w["service_minutes"]) for w in waiting] == [("REQ-1", "V1", 1440)]

    volunteer = timebank.as_("volunteer", "V1")
    assert (await timebank.client.post("/fulfilments/REQ-1/approve", json={}, headers=volunteer)).status_code == 403
    approved = await timebank.client.post(
        "/fulfilments/REQ-1/approve", json={"service_minutes": 90}, headers=timebank.staff
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["credited"]["hours"] == 1.5
    again = await timebank.client.post("/fulfilments/REQ-1/approve", json={}, headers=timebank.staff)
    assert again.status_code == 409
    assert len(await timebank.outbox("HoursCredited")) == 1
    assert (await timebank.client.get("/fulfilments", headers=timebank.staff)).json()["fulfilments"] == []
    assert (await timebank.audit())["balanced"]


async def test_ordinary_minutes_are_credited_at_once(timebank):
    consumer = timebank.app.state.consumer
    first, _ = record(raised("REQ-2", timebank.clock), timebank.clock.now())
    done, _ = record(RequestFulfilled(request_id="REQ-2", volunteer_id="V2", service_minutes=60), timebank.clock.now())
    await consumer.handle([first, done])
    assert (await timebank.balance("V2"))["hours"] == 1
