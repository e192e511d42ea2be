"""Bench: check-ins with an Idempotency-Key against plain ones, in-process on PostgreSQL.

The use case called directly (no HTTP), Kafka off, `--callers` concurrent callers, each
check-in a different resident. Rounds alternate plain and keyed; each prints the CPU of
this process per check-in and the wall time, and the ratio keyed / plain of the median
rounds. Keyed check-ins go through the portable writer in a unit of work that also claims
and answers the keys; plain ones through the PostgreSQL writer. Asserts nothing about time.

    FIRSTLINE_BENCH_PG_URL="$(deploy/postgres/postgres.sh url postgres)" .venv/bin/python bench/checkin_idempotency.py [--checkins 3000] [--callers 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _pg import fresh_database

from checkin import domain
from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock

NOW = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
STAFF = domain.Actor("bench", "command")


async def one_round(service, residents: list[str], callers: int, keyed: bool) -> tuple[float, float]:
    queue = list(residents)

    async def caller() -> None:
        while queue:
            resident_id = queue.pop()
            key = uuid.uuid4().hex if keyed else None
            await service.check_in(STAFF, resident_id, 36.6, [], "hotline", idempotency_key=key)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return (time.process_time() - cpu) / len(residents) * 1e6, time.perf_counter() - wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkins", type=int, default=3000)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    async with fresh_database("bench_keys") as (url, _):
        settings = CheckinSettings(database_url=url, jobs_interval_s=0, kafka_enabled=False, import_chunk_rows=5000)
        app = create_app(settings, clock=ManualClock(NOW))
        async with app.router.lifespan_context(app):
            service = app.state.service
            rows = ((n + 2, {"name": f"居民{n}", "building_id": f"B{n % 40:02d}", "unit": "1", "room": str(n),
                             "phone": "13800000000", "grid_id": "G1"}) for n in range(args.checkins))  # fmt: skip
            report = await service.import_residents(rows)
            async with app.state.runtime.db.session() as session:
                from sqlalchemy import select

                from checkin.models import Resident

                residents = list((await session.execute(select(Resident.resident_id))).scalars())
            assert report.imported == len(residents) == args.checkins
            await one_round(service, residents[:200], args.callers, False)  # warm both paths
            await one_round(service, residents[:200], args.callers, True)
            figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for number in range(args.rounds):
                for keyed in (False, True):
                    cpu_us, wall_s = await one_round(service, residents, args.callers, keyed)
                    figures[keyed].append((cpu_us, wall_s))
                    label = "keyed" if keyed else "plain"
                    print(f"round {number + 1} {label}: {cpu_us:6.0f} µs CPU per check-in, "
                          f"{args.checkins / wall_s:6.0f} check-ins/s", flush=True)  # fmt: skip
    plain = statistics.median(cpu for cpu, _ in figures[False])
    keyed = statistics.median(cpu for cpu, _ in figures[True])
    plain_rate = statistics.median(args.checkins / wall for _, wall in figures[False])
    keyed_rate = statistics.median(args.checkins / wall for _, wall in figures[True])
    print(f"median: plain {plain:.0f} µs, keyed {keyed:.0f} µs CPU per check-in (keyed / plain {keyed / plain:.2f}); "
          f"{plain_rate:.0f} against {keyed_rate:.0f} check-ins/s (keyed / plain {keyed_rate / plain_rate:.2f})")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
