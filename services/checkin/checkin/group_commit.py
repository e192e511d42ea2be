"""Group commit: concurrent requests share one transaction, each still gets its own answer.

At the morning peak thousands of residents check in within minutes. Each check-in alone
is a transaction of four statements, and the round trips, not the rows, are what cost.
`GroupCommit` lets requests that arrive while a transaction is committing wait and go
together in the next one — the technique databases use for their own log writes:

    group = GroupCommit(write_many)          # write_many(items) -> one outcome per item
    outcome = await group.submit(item)       # the item's result, or its exception raised

No timer holds a request back: a lone request is written at once, in a batch of one, and
batches grow only as fast as requests queue up behind a commit. With `writers` > 1 that
many batches are in flight at once (on PostgreSQL; `write_many` must then take its row
locks in a fixed order, or two batches could deadlock). A request is answered
only after its batch has committed, so a 2xx still means durable.

`write_many` answers an outcome per item, in order: a result, or the domain error that
refuses that item alone (an unknown resident does not fail its neighbours). If it raises
instead — the database said no to the whole batch — the items are written again one by
one, so that the error reaches only the request that caused it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
WriteMany = Callable[[Sequence[Item]], Awaitable[Sequence["Result | Exception"]]]


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write_many: WriteMany,
        *,
        max_batch: int = 256,
        writers: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or writers < 1:
            raise ValueError("max_batch and writers must be at least 1")
        self._write_many = write_many
        self._max_batch = max_batch
        self._writers = writers  # batches in flight at once: while one waits on the database, the next is built
        self._on_batch = on_batch  # batch sizes, for metrics
        self._queue: list[tuple[Item, asyncio.Future]] = []
        self._running: set[asyncio.Task] = set()

    @property
    def queued(self) -> int:
        """Requests waiting for a batch to take them."""
        return len(self._queue)

    async def submit(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._running = {writer for writer in self._running if not writer.done()}
        if len(self._running) < self._writers:
            self._running.add(asyncio.create_task(self._write_queued(), name="group-commit"))
        # Cancelling a request (its client went away) cancels only the wait: the item is
        # still written, like any request whose answer was lost on the way.
        return await future

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            if self._on_batch:
                self._on_batch(len(batch))
            try:
                outcomes = await self._write_many([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to each waiting caller, who raises it
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                log.warning("a batch of %d failed (%r); writing its items one by one", len(batch), exc)
                for item, future in batch:
                    try:
                        [outcome] = await self._write_many([item])
                    except Exception as one:  # noqa: BLE001 - that caller's own outcome
                        outcome = one
                    _settle(future, outcome)
                continue
            if len(outcomes) != len(batch):  # a bug in write_many: never answer the wrong request
                error = RuntimeError(f"write_many answered {len(outcomes)} outcomes for {len(batch)} items")
                for _, future in batch:
                    _settle(future, error)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                _settle(future, outcome)


def _settle(future: asyncio.Future, outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
