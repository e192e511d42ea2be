"""With the real broker: dispatch's events arrive on dispatch.events.v1, the consumer
reserves and issues, garbage goes to supplies.dlq.v1 with the reason, a redelivered event
changes nothing, and what supplies decides reaches supplies.events.v1 through the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from common import envelope as ce
from common.events.dispatch import ItemLine, RequestAssigned, RequestFulfilled, RequestRaised
from common.topics import DISPATCH_EVENTS, SUPPLIES_EVENTS, dlq
from supplies.main import create_app
from supplies.settings import SuppliesSettings
from support import TopicReader, bearer, kafka_client, wait_for

pytestmark = pytest.mark.kafka


async def test_dispatch_events_from_kafka_reserve_and_issue_garbage_is_dead_lettered_redelivery_ignored(
    kafka, tmp_path
):
    settings = SuppliesSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/supplies.db",
        kafka_bootstrap_servers=kafka,
        consumer_group=f"supplies-test-{uuid.uuid4().hex[:8]}",
        jobs_interval_s=0,
        outbox_poll_interval_s=0.1,
    )
    app = create_app(settings)
    service = app.state.service
    officer = bearer("supplies_officer", "officer-1")
    run = uuid.uuid4().hex[:8]
    request_id = f"REQ-{run}"
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        await wait_for(lambda: runtime.broker_connected, timeout=30, what="supplies connected to Kafka")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://supplies") as client:
            item = (
                await client.post(
                    "/items",
                    json={"sku": f"MASK-{run}", "name": "N95", "unit": "box", "category": "protective", "threshold": 8},
                    headers=officer,
                )
            ).json()["item_id"]
            depot = (
                await client.post(
                    "/depots", json={"name": f"Station {run}", "lat": 31.2, "lon": 121.4}, headers=officer
                )
            ).json()["depot_id"]
            response = await client.post(
                "/stock/receipts", json={"item_id": item, "depot_id": depot, "quantity": 10}, headers=officer
            )
            assert response.status_code == 201, response.text

            raised = ce.wrap(
                RequestRaised(
                    request_id=request_id, resident_id="R-1", category="medicine", priority="high",
                    due_by=datetime.now(UTC) + timedelta(hours=4), items=[ItemLine(item_id=item, quantity=4)],
                ),
                at=datetime.now(UTC),
            )  # fmt: skip
            assigned = ce.wrap(RequestAssigned(request_id=request_id, volunteer_id="V-1"), at=datetime.now(UTC))
            fulfilled = ce.wrap(
                RequestFulfilled(request_id=request_id, volunteer_id="V-1", service_minutes=15), at=datetime.now(UTC)
            )
            producer = AIOKafkaProducer(**kafka_client(bootstrap_servers=kafka))
            await producer.start()
            async with TopicReader(kafka, SUPPLIES_EVENTS) as out, TopicReader(kafka, dlq("supplies")) as dead:
                try:
                    key = request_id.encode()
                    headers = [("content-type", ce.CONTENT_TYPE.encode())]
                    for value in (ce.encode(raised), ce.encode(raised), b"{not json", ce.encode(assigned)):
                        await producer.send_and_wait(DISPATCH_EVENTS, value, key=key, headers=headers)

                    async def reserved() -> list[dict]:
                        await out.poll()
                        return [e for e in out.events("StockReserved") if e["subject"] == request_id]

                    [event] = await wait_for(reserved, timeout=60, what="StockReserved on supplies.events.v1")
                    assert event["data"]["lines"] == [{"item_id": item, "quantity": 4.0, "depot_id": depot}]
                    assert event["causationid"] == raised.id  # the chain is traceable

                    async def garbage():
                        await dead.poll()
                        return [r for r in dead.records if r.key == key]

                    [letter] = await wait_for(garbage, timeout=30, what="the garbage on supplies.dlq.v1")
                    assert letter.value == b"{not json"
                    letter_headers = {k: v.decode() for k, v in letter.headers}
                    assert letter_headers["dlq-origin-topic"] == DISPATCH_EVENTS
                    assert letter_headers["dlq-kind"] == "unparsable"
                    assert "not JSON" in letter_headers["dlq-reason"]

                    await producer.send_and_wait(DISPATCH_EVENTS, ce.encode(fulfilled), key=key, headers=headers)

                    async def issued():
                        reservation = await service.reservation(request_id)
                        return reservation.status == "issued"

                    await wait_for(issued, timeout=30, what="the reservation issued")
                finally:
                    await producer.stop()

                # The redelivered RequestRaised reserved nothing more; the assignment was ignored.
                position = (await service.positions(item_id=item, depot_id=depot))[0]
                assert (position.level.on_hand, position.level.reserved) == (6, 0)
                ledger = await service.ledger(request_id=request_id)
                assert [(m.kind, m.quantity, m.by) for m in ledger] == [("issue", -4.0, "V-1")]

                # 10 - 4 = 6 < 8: the reservation crossed the minimum, StockLow went out once.
                async def low():
                    await out.poll()
                    return [e for e in out.events("StockLow") if e["data"]["item_id"] == item]

                lows = await wait_for(low, timeout=30, what="StockLow")
                assert len(lows) == 1 and lows[0]["subject"] == f"{item}:{depot}"
                assert lows[0]["data"]["threshold"] == 8
