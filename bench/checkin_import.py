"""Bench: importing 100,000 residents from an XLSX register on PostgreSQL.

Times the whole import (read the workbook, validate every row, save residents and stage
their ResidentRegistered events) against a baseline measured in the same run: the
workbook reader alone going through the same file. Then imports the file again (it must change nothing).

    .venv/bin/python bench/checkin_import.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "deploy" / "demo"))

import community
from _pg import fresh_database

from checkin import importing
from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock


def register(rows: int) -> bytes:
    people = community.residents(rows)
    for i, person in enumerate(people):  # homes must be distinct: a building per 100 residents
        building, unit, room = person["address"].split("-")
        person["address"] = f"{building}{i // 2000:02d}-{unit}-{room}"
    return community.xlsx(people)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    content = register(args.rows)
    print(
        f"generated a {len(content) / 1e6:.1f} MB register of {args.rows:,} rows in {time.perf_counter() - started:.1f}s",
        flush=True,
    )

    started = time.perf_counter()
    parsed = sum(1 for _ in importing.read_rows("register.xlsx", content))
    parse_s = time.perf_counter() - started

    async with fresh_database("bench_import") as (url, _dsn):
        app = create_app(
            CheckinSettings(database_url=url, jobs_interval_s=0, kafka_enabled=False),
            clock=ManualClock(datetime(2026, 11, 21, 1, 0, tzinfo=UTC)),
        )
        async with app.router.lifespan_context(app):
            service = app.state.service
            started = time.perf_counter()
            report = await service.import_residents(importing.read_rows("register.xlsx", content))
            import_s = time.perf_counter() - started
            started = time.perf_counter()
            again = await service.import_residents(importing.read_rows("register.xlsx", content))
            again_s = time.perf_counter() - started
    assert parsed == args.rows and report.imported == args.rows and not report.rejected, report
    assert again.imported == 0 and again.unchanged == args.rows
    print(
        f"import of {args.rows:,} rows: {import_s:.1f}s ({args.rows / import_s:,.0f} rows/s); "
        f"reading the workbook alone {parse_s:.1f}s -> import/read ratio {import_s / parse_s:.2f}x; "
        f"the same file again {again_s:.1f}s (0 imported, {again.unchanged:,} unchanged)"
    )


if __name__ == "__main__":
    asyncio.run(main())
