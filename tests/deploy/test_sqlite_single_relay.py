"""SQLite is a single-replica store, yet two processes may share a file for a moment (a
restart that overlaps the old process, a second replica started by mistake): their relays
take turns, so no outbox row is published twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import insert

from common.clock import ManualClock
from common.db import Database
from common.outbox import OutboxMessage, OutboxRelay
from support import wait_for

AT = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
EVENTS = 1500


async def test_two_relays_on_one_sqlite_file_publish_each_event_once(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/checkin.db"
    first, second = Database(url), Database(url)
    async with first.engine.begin() as conn:
        await conn.run_sync(lambda c: OutboxMessage.__table__.create(c))
    async with first.session() as session:
        rows = [{"event_id": f"e-{i}", "event_type": "CheckInSubmitted", "topic": "checkin.events.v1",
                 "key": f"R-{i}", "value": f'{{"n": {i}}}', "created_at": AT} for i in range(EVENTS)]  # fmt: skip
        await session.execute(insert(OutboxMessage.__table__), rows)
        await session.commit()

    published: Counter[bytes] = Counter()

    async def publish(records, _headers):
        await asyncio.sleep(0.005)  # a broker round trip: the other relay's pass runs meanwhile
        published.update(key for _topic, key, _value in records)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return [done]

    relays = [
        OutboxRelay(db, publish, clock=ManualClock(AT), batch_size=50, poll_interval_s=0.01) for db in (first, second)
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await wait_for(lambda: len(published) == EVENTS, timeout=60, what="every event published")
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.gather(*tasks)
        await first.dispose()
        await second.dispose()
    assert [key for key, times in published.items() if times > 1] == []
