"""Issue 19: SQL error text with `[parameters: ('R1', '13912345678')]` reached logs and
dead-letter headers. A database error now names its statement, never the values bound to it
or quoted back by the server, in the exception, the log or the dead letter (real broker,
SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from common import bus, envelope, logs, topics
from common.bus import Consumer
from common.db import Database
from common.events.checkin import CheckInMissed
from common.outbox import InboxMessage
from common.runtime import Runtime
from common.settings import ServiceSettings
from support import TopicReader, unique, wait_for

PHONE = "13912345678"
CONTENT_TYPE = ("content-type", b"application/cloudevents+json")


async def _duplicate_inbox_row(session, consumer: str) -> None:
    """A unique violation whose values are a resident's id and phone, as a real handler's might be."""
    row = {"consumer": consumer, "event_id": PHONE, "event_type": "R1", "processed_at": datetime.now(UTC)}
    await session.execute(insert(InboxMessage).values(**row))
    await session.execute(insert(InboxMessage).values(**row))


async def test_a_database_error_names_no_parameter_in_its_text(database_url):
    database = Database(database_url)
    async with database.engine.begin() as connection:
        await connection.run_sync(InboxMessage.__table__.create, checkfirst=True)
    with pytest.raises(IntegrityError) as error:
        async with database.session() as session:
            await _duplicate_inbox_row(session, "leaktest")
    assert "[SQL parameters hidden" in str(error.value) and "'13912345678'" not in str(error.value)
    formatted = logs.TextFormatter("leaktest").format(
        logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (error.value,), None)
    )
    assert PHONE not in formatted and "INSERT INTO inbox" in formatted
    await database.engine.dispose()


async def test_a_dead_letter_of_a_failing_sql_statement_carries_no_parameter(database_url, kafka, caplog):
    caplog.set_level(logging.INFO)
    settings = ServiceSettings(
        service="leaktest", database_url=database_url, kafka_bootstrap_servers=kafka, kafka_principal="operator",
        jobs_interval_s=0, consumer_retry_backoff_s=0.01, consumer_max_attempts=2, start_consumers=False,
    )  # fmt: skip
    runtime = Runtime(settings)
    name = unique("leaktest")

    async def on_missed(_event, _envelope, uow) -> None:
        await _duplicate_inbox_row(uow.session, name + "-rows")

    dead_letters = topics.dlq("command")
    runner = runtime.consume(Consumer(name=name, topics=[topics.CHECKIN_EVENTS], handlers={CheckInMissed: on_missed},
                                      dead_letter_topic=dead_letters))  # fmt: skip
    event = CheckInMissed(resident_id=f"R-{uuid.uuid4().hex[:8]}", date=date(2026, 12, 1), consecutive_days=1,
                          grid_id="G", building_id="B")  # fmt: skip
    value = envelope.encode(envelope.wrap(event, at=datetime.now(UTC)))
    record = ConsumerRecord(topics.CHECKIN_EVENTS, 0, 7, 0, 0, b"k", value, None, 1, len(value), [CONTENT_TYPE])
    await runtime.start()
    try:
        await wait_for(lambda: runtime.broker_connected, what="connected")
        async with TopicReader(kafka, dead_letters) as dead:
            await runner.handle([record])
            await dead.wait_for_events("CheckInMissed", 1)
    finally:
        await runtime.stop()
    (letter,) = [dict(r.headers) for r in dead.records if r.value == value]
    reason = letter[bus.H_REASON].decode()
    assert "IntegrityError" in reason and "INSERT INTO inbox" in reason
    assert PHONE not in reason
    assert not [r for r in caplog.records if PHONE in r.getMessage()]
