"""Transactional outbox and inbox.

A use case writes its state change and the events it causes in one transaction
(`UnitOfWork.emit`); the relay publishes unsent events to Kafka in commit order and marks
them sent. A 2xx answer therefore means the event will reach Kafka, even if Kafka is down
now. Consumers record each applied event id in the inbox in the same transaction as the
effect (`UnitOfWork.first_time`), so redelivery and replays change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from common import envelope as ce
from common import logs
from common.clock import Clock
from common.db import Database, UTCDateTime, bulk_insert, insert_ignore, utc_column
from common.events.base import Event

log = logging.getLogger(__name__)
T = TypeVar("T")
M = TypeVar("M")

# Any constant works: it names "the outbox relay" among advisory locks of this database.
RELAY_LOCK_ID = 0x0F1257_0B0C
CONTENDED_RETRY_S = 0.02  # how soon a relay looks again when another replica's relay is publishing
# A relay pass on PostgreSQL: the advisory lock, and (for this transaction only) no bitmap
# scans, so a backlog is read by walking ix_outbox_unsent in order, stepping over no dead
# entries (docs/performance.md, "The outbox relay").
PG_LOCK_AND_PLAN = "SELECT pg_try_advisory_xact_lock($1), set_config('enable_bitmapscan', 'off', true)"


# Only the unsent rows, in seq order: the relay's next batch is the head of this index, and
# marking a row sent removes it from the index. sent_at of sent rows is not indexed.
UNSENT = text("sent_at IS NULL")


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unsent", "seq", postgresql_where=UNSENT, sqlite_where=UNSENT),)

    # BigInteger on PostgreSQL, INTEGER (the rowid) on SQLite, so both autoincrement.
    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    )
    # Not unique in the database: ids are random UUIDs (`envelope.new_id`) and nothing looks a
    # row up by id, so an index of them would only slow every write.
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=100)
    topic: str = Field(max_length=200)
    key: str = Field(max_length=200)
    value: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))


# A pass's batch on PostgreSQL: the head of ix_outbox_unsent, then, once Kafka has it all,
# the rows marked sent by primary key, in the same transaction (marked after the publish, the
# rows are not held updated while Kafka answers).
PG_NEXT_BATCH = "SELECT seq, topic, key, value FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1"
PG_MARK_SENT = "UPDATE outbox SET sent_at = $1 WHERE seq = ANY($2::bigint[])"


TOMBSTONE = "tombstone"  # the event_type of a staged tombstone (`UnitOfWork.tombstone`)


async def delete_sent(session, keys: Iterable[str]) -> int:
    """Delete the sent outbox rows keyed by any of `keys` (an erased resident's events):
    Kafka has them, and the topic's retention or compaction removes them there. Unsent rows
    stay: they go out first, in order, before the erasure that follows them."""
    keys = list(keys)
    if not keys:
        return 0
    table = OutboxMessage.__table__
    result = await session.execute(delete(table).where(table.c.key.in_(keys), table.c.sent_at.is_not(None)))
    return result.rowcount or 0


class InboxMessage(SQLModel, table=True):
    __tablename__ = "inbox"

    consumer: str = Field(primary_key=True, max_length=100)
    event_id: str = Field(primary_key=True, max_length=36)
    event_type: str = Field(max_length=100)
    processed_at: datetime = Field(sa_column=utc_column())


CLAIM_FROM_ARRAYS = text(
    "INSERT INTO inbox (consumer, event_id, event_type, processed_at) "
    "SELECT :consumer, event_id, event_type, :at FROM unnest(:ids, :types) AS claimed (event_id, event_type) "
    "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id"
).bindparams(
    bindparam("ids", type_=ARRAY(String)),
    bindparam("types", type_=ARRAY(String)),
    bindparam("consumer", type_=String),
    bindparam("at", type_=UTCDateTime()),
)


def outbox_row(
    event: Event, at: datetime, *, correlation_id: str | None = None, causation_id: str | None = None
) -> dict:
    """An event's outbox row, its envelope encoded with time `at`: what `UnitOfWork.emit`
    stages, for a writer that inserts its rows itself (checkin/daily_writes.py)."""
    event_id, value = ce.encode_event(event, at=at, correlation_id=correlation_id, causation_id=causation_id)
    return {"event_id": event_id, "event_type": event.event_type(), "topic": event.topic, "key": event.subject(),
            "value": value.decode(), "created_at": at}  # fmt: skip


class UnitOfWork:
    """One transaction: load, decide, save, and stage the events it causes. A use case opens
    it with `runtime.work(uow)`, which commits when the block ends (or leaves that to the
    consumer whose batch it joins):

        async with self.runtime.work(uow) as uow:
            ...                          # uow.session for queries
            uow.emit(SomethingHappened(...))

    Leaving the block on an error rolls everything back, events included.
    """

    def __init__(self, db: Database, clock: Clock, on_commit: Callable[[], None] | None = None) -> None:
        self.db = db
        self.clock = clock
        self._on_commit = on_commit
        self._any_staged = False  # any event staged: wake the relay after the commit
        self._cause: ce.CloudEvent | None = None

    @property
    def cause(self) -> ce.CloudEvent | None:
        """The event being applied (set by a consumer's runner): what emitted events follow from."""
        return self._cause

    @cause.setter
    def cause(self, envelope: ce.CloudEvent | None) -> None:
        self._cause = envelope
        logs.correlation_id.set((envelope.correlationid or envelope.id) if envelope else None)  # for its log lines

    async def __aenter__(self) -> UnitOfWork:
        self.session = self.db.sessions()
        self.committed = False
        self._staged: list[dict] = []
        # What a use case keeps for the rest of this transaction (rows it loaded or added,
        # keyed as it likes): a consumer's batch of thousands of events is one transaction.
        self.memo: dict = {}
        return self

    async def __aexit__(self, *exc_info) -> None:
        if not self.committed:
            await self.session.rollback()
        await self.session.close()

    def emit(self, event: Event, *, cause: ce.CloudEvent | None = None, at: datetime | None = None) -> str:
        """Stage an event to be published once this transaction commits; returns its id.
        `at`, the envelope's time, is the clock's now unless the caller already read it for
        the change it records. Staged events are written at commit (or at `flush`)."""
        cause = cause or self.cause
        row = outbox_row(
            event,
            at or self.clock.now(),
            correlation_id=cause.correlationid if cause else None,
            causation_id=cause.id if cause else None,
        )
        self._staged.append(row)
        self._any_staged = True
        return row["event_id"]

    def tombstone(self, topic: str, key: str) -> None:
        """Stage a tombstone (a null value) for `key` on a compacted topic: once compacted, the
        topic keeps nothing of the key. Stored with an empty value, published as null."""
        self._staged.append({"event_id": ce.new_id(), "event_type": TOMBSTONE, "topic": topic, "key": key,
                             "value": "", "created_at": self.clock.now()})  # fmt: skip
        self._any_staged = True

    async def flush(self) -> None:
        """Write the events staged so far: a use case staging tens of thousands keeps its memory bounded."""
        await bulk_insert(self.session, OutboxMessage.__table__, self._staged)
        self._staged.clear()

    def for_update(self, query: Select[T]) -> Select[T]:
        """`query` locking the rows it reads until commit, where the database can: PostgreSQL
        locks them (two staff acting at once, the second sees the first's change); SQLite
        runs one writer at a time, so the query is left as it is."""
        return query.with_for_update() if self.db.is_postgres else query

    async def get_for_update(self, model: type[M], key: object) -> M | None:
        """`session.get`, locking the row as `for_update` does."""
        return await self.session.get(model, key, with_for_update=self.db.is_postgres)

    async def lock_for_write(self) -> None:
        """Before reading what a decision rests on: SQLite has no row locks, and its driver
        begins a transaction only at the first write, so a no-op write takes the database's
        single write lock now and nothing read next can go stale. PostgreSQL needs nothing
        here (it locks rows, `for_update`)."""
        if self.db.is_sqlite:
            table = OutboxMessage.__table__
            await self.session.execute(update(table).where(table.c.seq == -1).values(sent_at=None))

    def insert(self, model: type[SQLModel]):
        """This database's INSERT of `model`, which knows ON CONFLICT DO NOTHING / DO UPDATE and RETURNING."""
        return self.db.insert(model)

    async def first_time(self, consumer: str, envelope: ce.CloudEvent) -> bool:
        """Record that `consumer` applies this event; False if it already has."""
        return await insert_ignore(
            self.session,
            InboxMessage,
            {
                "consumer": consumer,
                "event_id": envelope.id,
                "event_type": envelope.type,
                "processed_at": self.clock.now(),
            },
            ["consumer", "event_id"],
        )

    async def claim(self, consumer: str, envelopes: Iterable[ce.CloudEvent]) -> set[str]:
        """Record a batch's event ids in the inbox in one statement; return the ids that were new."""
        now = self.clock.now()
        rows = {
            e.id: {"consumer": consumer, "event_id": e.id, "event_type": e.type, "processed_at": now} for e in envelopes
        }
        if not rows:
            return set()
        if self.db.is_postgres:  # two arrays in one statement: no per-row parameters to render or bind
            result = await self.session.execute(
                CLAIM_FROM_ARRAYS,
                {"consumer": consumer, "at": now, "ids": list(rows), "types": [r["event_type"] for r in rows.values()]},
            )
            return set(result.scalars())
        table = InboxMessage.__table__
        result = await self.session.execute(
            self.db.insert(table)
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
            .returning(table.c.event_id),
            list(rows.values()),  # executemany: one compiled statement whatever the batch size
        )
        return set(result.scalars())

    async def commit(self) -> None:
        await self.flush()
        await self.session.commit()
        self.committed = True
        if self._any_staged and self._on_commit:
            self._on_commit()


def next_batch(size: int):
    """The relay's read: the oldest unsent rows, the head of ix_outbox_unsent (which holds only these)."""
    return (
        select(OutboxMessage.seq, OutboxMessage.topic, OutboxMessage.key, OutboxMessage.value)
        .where(OutboxMessage.sent_at.is_(None))  # type: ignore[union-attr]
        .order_by(OutboxMessage.seq)
        .limit(size)
    )


class Publish(Protocol):
    def __call__(
        self, records: Sequence[tuple[str, bytes, bytes]], headers: dict[str, str]
    ) -> Awaitable[list[Awaitable]]:
        """Start sending (topic, key, value) records in this order; the awaited result is a
        list of futures that settle once the broker has acknowledged every record."""
        ...


class OutboxRelay:
    """Publishes unsent outbox rows in commit order and marks them sent.

    Several replicas may run a relay: on PostgreSQL a transaction-scoped advisory lock lets
    one publish at a time, which keeps per-key order (SKIP LOCKED would not). The others
    wait as hot standbys. Delivery is at least once; consumers' inboxes make it once.
    SQLite is a single-replica store, but two processes on one file (a restart overlapping
    the old process) still take turns: a lock file beside the database serialises passes.
    """

    def __init__(
        self,
        db: Database,
        publish: Publish,
        *,
        clock: Clock,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        publish_timeout_s: float = 30.0,
        on_pass: Callable[[int, int, float | None], None] | None = None,
    ) -> None:
        self.db = db
        self.publish = publish
        self.clock = clock
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.publish_timeout_s = publish_timeout_s
        self._on_pass = on_pass  # (published, backlog, oldest_age_s) for metrics
        self._wakeup = asyncio.Event()
        self._one_pass = asyncio.Lock()  # within a process; the advisory lock is across replicas
        self._stopping = False
        self._last_stats = 0.0
        self._unreported = 0  # published since the metrics were last reported
        self._lock_taken = False  # the last pass found another replica's relay publishing

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        backoff = self.poll_interval_s
        while not self._stopping:
            self._wakeup.clear()  # before the pass: a commit during the pass must wake the next one
            self._lock_taken = False
            try:
                published = await self.publish_pending()
                backoff = self.poll_interval_s
                if published >= self.batch_size:
                    continue  # a full batch: there may be more
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka or the database is down: retry
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                with contextlib.suppress(Exception):
                    await self._report(0)  # the backlog grows while Kafka is away: show it
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            # Another replica's pass holds the lock; it may have read the outbox before our
            # latest commit: look again soon rather than after a whole poll interval.
            wait_s = min(CONTENDED_RETRY_S, self.poll_interval_s) if self._lock_taken else self.poll_interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait_s)

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """One pass: publish up to a batch of unsent events; return how many were sent."""
        async with self._one_pass:
            return await self._pass()

    async def _pass(self) -> int:
        async with self._next_batch() as rows:
            if rows:
                # The whole pass at once: the publisher batches records per partition.
                pending = await self.publish(
                    [(topic, key.encode(), value.encode() or None) for _, topic, key, value in rows], ce.headers()
                )
                await asyncio.wait_for(asyncio.gather(*pending), timeout=self.publish_timeout_s)
        await self._report(len(rows))
        return len(rows)

    def _next_batch(self) -> contextlib.AbstractAsyncContextManager[Sequence[tuple[int, str, str, str]]]:
        """The next batch (seq, topic, key, value), in seq order, marked sent when the block
        ends normally, in the transaction that read it: an error while publishing rolls it back."""
        return self._next_batch_postgres() if self.db.is_postgres else self._next_batch_sqlite()

    @contextlib.asynccontextmanager
    async def _next_batch_postgres(self) -> AsyncIterator[Sequence[tuple[int, str, str, str]]]:
        # asyncpg itself, not an ORM session: a pass follows every group commit at the
        # check-in peak, where the ORM's per-statement CPU would rival the writes themselves.
        async with self.db.autocommit() as connection, connection.transaction():
            if not await connection.fetchval(PG_LOCK_AND_PLAN, RELAY_LOCK_ID):
                self._lock_taken = True
                yield []
                return
            rows = await connection.fetch(PG_NEXT_BATCH, self.batch_size)
            yield rows
            if rows:
                await connection.execute(PG_MARK_SENT, self.clock.now(), [row[0] for row in rows])

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[bool]:
        """On a SQLite file, whether this pass holds <database>.relay-lock (never blocks)."""
        path = self.db.engine.url.database
        if not self.db.is_sqlite or not path or path == ":memory:":
            yield True
            return
        lock_file = os.open(f"{path}.relay-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_file)
            yield False
            return
        try:
            yield True
        finally:
            os.close(lock_file)  # releases the lock

    @contextlib.asynccontextmanager
    async def _next_batch_sqlite(self) -> AsyncIterator[Sequence[tuple[int, str, str, str]]]:
        with self._file_lock() as ours:
            if not ours:
                self._lock_taken = True
                yield []
                return
            async with self._next_batch_orm() as rows:
                yield rows

    @contextlib.asynccontextmanager
    async def _next_batch_orm(self) -> AsyncIterator[Sequence[tuple[int, str, str, str]]]:
        async with self.db.session() as session:
            rows = (await session.execute(next_batch(self.batch_size))).all()
            yield rows
            if rows:
                table = OutboxMessage.__table__
                sent = table.c.seq.in_([seq for seq, *_ in rows])
                await session.execute(update(table).where(sent).values(sent_at=self.clock.now()))
                await session.commit()

    async def _report(self, published: int) -> None:
        """Metrics after a pass. Counting the backlog reads every unsent row, so while a big
        backlog drains it is counted at most once a second (not after every pass), and once
        more when the drain ends; published events are added up meanwhile."""
        if not self._on_pass:
            return
        self._unreported += published
        drained = not published and self._unreported
        if time.monotonic() - self._last_stats < 1.0 and not drained:
            return
        self._last_stats = time.monotonic()
        async with self.db.session() as session:
            backlog, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxMessage.created_at)).where(
                        OutboxMessage.sent_at.is_(None)  # type: ignore[union-attr]
                    )
                )
            ).one()
        age = (self.clock.now() - oldest).total_seconds() if oldest else None
        published, self._unreported = self._unreported, 0
        self._on_pass(published, backlog, age)

    async def purge_sent(
        self, older_than: timedelta, *, event_types: Iterable[str] | None = None, batch: int = 5000
    ) -> int:
        """Delete rows sent more than `older_than` ago (Kafka keeps the events; the outbox only
        has to get them there), oldest first, `batch` rows a transaction; return how many.
        Only rows of `event_types` when given (the health-carrying ones go sooner). Unsent
        rows stay however old they are. Each batch walks the primary key from the oldest row
        left (sent_at is not indexed): an hourly job's last batch reads the rows kept, a few
        days' events."""
        table = OutboxMessage.__table__
        cutoff = self.clock.now() - older_than
        due = table.c.sent_at < cutoff
        if event_types is not None:
            due = due & table.c.event_type.in_(list(event_types))
        oldest = select(table.c.seq).where(due).order_by(table.c.seq).limit(batch)
        purged = 0
        while True:
            async with self.db.session() as session:
                deleted = (await session.execute(delete(table).where(table.c.seq.in_(oldest)))).rowcount or 0
                await session.commit()
            purged += deleted
            if deleted < batch:
                return purged
