"""Bench: the command center's consumer path alone, in-process on PostgreSQL (no Kafka).

N `CheckInMissed` records are fed to the consumer runner in batches, as the broker would
deliver them: parse, validate, claim the inbox, record the check-in fact, route, open the
ticket (which tells its history's first entry) with its heat-map point and outbox row,
commit. Baseline in the same run: only parsing and validating the same records (the part no
consumer can skip).

    .venv/bin/python bench/command_consumer.py [--events 20000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from aiokafka import ConsumerRecord

sys.path.insert(0, str(Path(__file__).parent))

from _pg import fresh_database

from command.main import create_app
from command.settings import CommandSettings
from common import envelope as ce
from common.events.checkin import CheckInMissed


def records(count: int) -> list[ConsumerRecord]:
    out = []
    for i in range(count):
        event = CheckInMissed(resident_id=f"R-{i:07d}", date=date.today(), consecutive_days=1, grid_id=f"G{i % 20 + 1}",
                              building_id=f"B{i % 200:03d}")  # fmt: skip
        value = ce.encode(ce.wrap(event, at=datetime.now(UTC)))
        out.append(ConsumerRecord("checkin.events.v1", i % 6, i, 0, 0, b"k", value, None, 1, len(value), []))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    built = records(args.events)
    batches = [built[i : i + args.batch] for i in range(0, args.events, args.batch)]
    started = time.perf_counter()
    for batch in batches:
        for record in batch:
            ce.decode(ce.parse(record.value))
    parse_only = time.perf_counter() - started
    async with fresh_database("bench_cmd_consumer") as (url, _):
        app = create_app(CommandSettings(database_url=url, kafka_enabled=False, start_consumers=False, jobs_interval_s=0,
                                         log_level="WARNING"))  # fmt: skip
        async with app.router.lifespan_context(app):
            runner = app.state.runtime.runners[0]
            started, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                await runner.handle(batch)
            applied, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = args.events
    print(f"command consumer path, {n:,} CheckInMissed in batches of {args.batch} (PostgreSQL, in-process):")
    print(
        f"  applied as tickets: {applied:.2f} s ({n / applied:,.0f} events/s); this process's CPU {cpu / n * 1e6:.0f} µs per event"
    )
    print(f"  baseline, parse and validate only: {parse_only:.2f} s ({n / parse_only:,.0f} events/s)")
    print(f"  ratio: applying takes {applied / parse_only:.1f}x parsing and validating")


if __name__ == "__main__":
    asyncio.run(main())
