"""Bench: the cutoff sweep over 100,000 and 1,000,000 residents on PostgreSQL.

For each size: N residents, 95% checked in, 1% away; the sweep (one INSERT ... SELECT plus
the CheckInMissed events staged in the outbox, one transaction) is timed against a baseline
measured on the same data in the same run: the bare anti-join that only counts who
missed. Prints figures; asserts nothing about time.

    .venv/bin/python bench/checkin_sweep.py [--sizes 100000 1000000] [--missing 0.04]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _pg import fresh_database

from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock

DAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, after the cutoff


async def load(dsn: str, n: int, missing: float, away: float) -> int:
    import asyncpg

    rng = random.Random(n)
    registered = NOW - timedelta(days=3)
    conn = await asyncpg.connect(dsn)
    try:
        residents, checkins, absences = [], [], []
        expected_missed = 0
        for i in range(n):
            rid = f"R-{i:010d}"
            building = f"B{i % 400:03d}"
            residents.append(
                (
                    rid,
                    f"居民{i}",
                    "13800000000",
                    "C1",
                    f"G{i % 40:02d}",
                    building,
                    "1",
                    str(i),
                    "[]",
                    None,
                    None,
                    registered,
                )
            )
            roll = rng.random()
            if roll < away:
                absences.append((rid, DAY, DAY, "away", "bench", registered))
            elif roll < away + missing:
                expected_missed += 1
            else:
                checkins.append((rid, DAY, 36.5, "[]", False, False, "self", rid, NOW, 1))
        await conn.copy_records_to_table(
            "resident",
            records=residents,
            columns=[
                "resident_id",
                "name",
                "phone",
                "community_id",
                "grid_id",
                "building_id",
                "unit",
                "room",
                "tags",
                "lat",
                "lon",
                "registered_at",
            ],
        )
        await conn.copy_records_to_table(
            "daily_checkin",
            records=checkins,
            columns=[
                "resident_id",
                "date",
                "temperature_c",
                "symptoms",
                "fever",
                "anomaly",
                "channel",
                "submitted_by",
                "submitted_at",
                "revisions",
            ],
        )
        await conn.copy_records_to_table(
            "absence",
            records=absences,
            columns=["resident_id", "from_date", "to_date", "reason", "recorded_by", "recorded_at"],
        )
        await conn.execute("ANALYZE")
        return expected_missed
    finally:
        await conn.close()


BASELINE = """
SELECT count(*) FROM resident r
WHERE r.registered_at < $1
  AND NOT EXISTS (SELECT 1 FROM absence a WHERE a.resident_id = r.resident_id AND a.from_date <= $2 AND a.to_date >= $2)
  AND NOT EXISTS (SELECT 1 FROM daily_checkin d WHERE d.resident_id = r.resident_id AND d.date = $2)
"""


async def one_size(n: int, missing: float, away: float) -> dict:
    import asyncpg

    async with fresh_database("bench_sweep") as (url, dsn):
        settings = CheckinSettings(database_url=url, jobs_interval_s=0, kafka_enabled=False)
        app = create_app(settings, clock=ManualClock(NOW))
        async with app.router.lifespan_context(app):
            started = time.perf_counter()
            expected = await load(dsn, n, missing, away)
            load_s = time.perf_counter() - started

            conn = await asyncpg.connect(dsn)
            started = time.perf_counter()
            counted = await conn.fetchval(BASELINE, NOW, DAY)
            baseline_s = time.perf_counter() - started
            await conn.close()

            service = app.state.service
            started = time.perf_counter()
            result = await service.sweep(DAY)
            sweep_s = time.perf_counter() - started
            started = time.perf_counter()
            again = await service.sweep(DAY)
            again_s = time.perf_counter() - started
    assert result.missed == counted == expected, (result, counted, expected)
    assert again.missed == 0
    return {
        "n": n,
        "missed": result.missed,
        "load_s": load_s,
        "baseline_s": baseline_s,
        "sweep_s": sweep_s,
        "again_s": again_s,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--missing", type=float, default=0.04, help="share of residents who forget (default 0.04)")
    parser.add_argument("--away", type=float, default=0.01)
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        print(f"loading {n:,} residents …", flush=True)
        rows.append(await one_size(n, args.missing, args.away))
        r = rows[-1]
        print(
            f"  {r['n']:>9,} residents: sweep {r['sweep_s']:.2f}s ({r['missed']:,} CheckInMissed staged), "
            f"bare anti-join count {r['baseline_s']:.2f}s, ratio {r['sweep_s'] / r['baseline_s']:.1f}x; "
            f"second sweep {r['again_s']:.2f}s (finds 0); load {r['load_s']:.1f}s",
            flush=True,
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        growth = (b["sweep_s"] / a["sweep_s"]) / (b["n"] / a["n"])
        print(
            f"growth: {b['n'] / a['n']:.0f}x residents -> {b['sweep_s'] / a['sweep_s']:.1f}x time "
            f"(1.0 = linear; {growth:.2f} here); per resident {a['sweep_s'] / a['n'] * 1e6:.1f}µs -> {b['sweep_s'] / b['n'] * 1e6:.1f}µs"
        )


if __name__ == "__main__":
    asyncio.run(main())
