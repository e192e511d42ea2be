"""Group commit: who waits for what, and who gets which answer. No database."""

from __future__ import annotations

import asyncio

import pytest

from checkin.group_commit import GroupCommit
from support import wait_for


class Refused(Exception):
    pass


class Writer:
    """Records each batch; holds the first one open until released; refuses odd numbers."""

    def __init__(self, fail_batches_with: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_batches_with = fail_batches_with  # the whole batch raises when it holds this item

    async def __call__(self, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            await self.release.wait()
        if self.fail_batches_with in items and len(items) > 1:
            raise RuntimeError("the database refused the batch")
        if self.fail_batches_with in items:
            raise Refused(f"{self.fail_batches_with} breaks any transaction it is in")
        return [Refused(f"{i} is odd") if i % 2 else i * 10 for i in items]


async def writing(group: GroupCommit, writer: Writer, item: int) -> asyncio.Task:
    """Submit one item and return once its batch is being written (and held open)."""
    task = asyncio.create_task(group.submit(item))
    await wait_for(lambda: writer.batches and writer.batches[-1] == [item], timeout=5, what=f"a batch of [{item}]")
    return task


async def queued(group: GroupCommit, *items: int) -> list[asyncio.Task]:
    """Submit items while a write is in progress; return once they all wait in the queue."""
    tasks = [asyncio.create_task(group.submit(item)) for item in items]
    await wait_for(lambda: group.queued == len(items), timeout=5, what=f"{len(items)} queued requests")
    return tasks


async def test_a_lone_request_is_written_at_once():
    writer = Writer()
    writer.release.set()
    assert await GroupCommit(writer).submit(2) == 20
    assert writer.batches == [[2]]


async def test_requests_that_arrive_during_a_write_go_together_in_the_next_one():
    writer = Writer()
    group = GroupCommit(writer)
    first = await writing(group, writer, 0)
    rest = await queued(group, 2, 4, 6)
    writer.release.set()
    assert await asyncio.gather(first, *rest) == [0, 20, 40, 60]
    assert writer.batches == [[0], [2, 4, 6]]


async def test_an_item_refused_by_the_writer_fails_only_its_own_request():
    writer = Writer()
    group = GroupCommit(writer)
    await writing(group, writer, 0)
    tasks = await queued(group, 2, 3, 4)
    writer.release.set()
    two, three, four = await asyncio.gather(*tasks, return_exceptions=True)
    assert (two, four) == (20, 40)
    assert isinstance(three, Refused) and "3 is odd" in str(three)


async def test_when_the_whole_batch_fails_its_items_are_written_one_by_one():
    writer = Writer(fail_batches_with=4)
    group = GroupCommit(writer)
    await writing(group, writer, 0)
    tasks = await queued(group, 2, 4, 6)
    writer.release.set()
    two, four, six = await asyncio.gather(*tasks, return_exceptions=True)
    assert (two, six) == (20, 60)
    assert isinstance(four, Refused)
    assert writer.batches == [[0], [2, 4, 6], [2], [4], [6]]


async def test_batches_are_capped():
    writer = Writer()
    group = GroupCommit(writer, max_batch=2)
    await writing(group, writer, 0)
    tasks = await queued(group, 2, 4, 6, 8, 10)
    writer.release.set()
    assert await asyncio.gather(*tasks) == [20, 40, 60, 80, 100]
    assert writer.batches == [[0], [2, 4], [6, 8], [10]]


async def test_a_cancelled_request_is_still_written_and_its_neighbours_answered():
    writer = Writer()
    group = GroupCommit(writer)
    await writing(group, writer, 0)
    gone, stays = await queued(group, 2, 4)
    gone.cancel()
    writer.release.set()
    assert await stays == 40
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert writer.batches[1] == [2, 4]


async def test_a_writer_answering_the_wrong_number_of_outcomes_fails_the_batch_loudly():
    async def short(items):
        return items[:-1]

    group = GroupCommit(short)
    results = await asyncio.gather(*(group.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "outcomes" in str(r) for r in results)


async def test_with_two_writers_a_batch_is_written_while_another_waits_on_the_database():
    writer = Writer()
    group = GroupCommit(writer, writers=2)
    slow = await writing(group, writer, 0)
    quick = asyncio.create_task(group.submit(2))  # a second writer takes it at once
    assert await quick == 20 and not slow.done()
    writer.release.set()
    assert await slow == 0
    assert writer.batches == [[0], [2]]
