"""Bench: the check-in service's metrics refresh (every 10 s) on PostgreSQL, the biggest of
the five: completion per building and grid, misses, fevers, channels, reminders, the
heat map by building. For each size (400 buildings in 40 grids, 95% checked in, 4% missed
and swept, 1% away) it is timed against a baseline measured on the same data in the same
run: one `GET /stats/completion?by=building` query, the figure staff already ask for.
Prints figures; asserts nothing about time.

    .venv/bin/python bench/metrics_refresh.py [--sizes 2000 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _pg import fresh_database
from checkin_sweep import DAY, NOW, load

from checkin.main import create_app
from checkin.settings import CheckinSettings
from common.clock import ManualClock

INTERVAL_S = 10.0


async def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def one_size(n: int, repeat: int) -> dict:
    async with fresh_database("bench_metrics") as (url, dsn):
        app = create_app(
            CheckinSettings(database_url=url, jobs_interval_s=0, kafka_enabled=False), clock=ManualClock(NOW)
        )
        async with app.router.lifespan_context(app):
            await load(dsn, n, 0.04, 0.01)
            service, runtime = app.state.service, app.state.runtime
            await service.sweep(DAY)
            baseline = await timed(lambda: service.completion(DAY, "building", None), repeat)
            refresh = await timed(lambda: runtime.run_job("metrics"), repeat)
            series = sum(1 for line in (await _exposition(app)).splitlines() if line.startswith("firstline_checkin_"))
    return {"n": n, "baseline_s": baseline, "refresh_s": refresh, "series": series}


async def _exposition(app) -> str:
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://checkin") as client:
        return (await client.get("/metrics")).text


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for n in args.sizes:
        print(f"loading {n:,} residents …", flush=True)
        r = await one_size(n, args.repeat)
        print(
            f"  {r['n']:>9,} residents: refresh {r['refresh_s'] * 1000:.0f} ms (median of {args.repeat}), "
            f"one completion query {r['baseline_s'] * 1000:.0f} ms, ratio {r['refresh_s'] / r['baseline_s']:.1f}x; "
            f"{r['series']:,} check-in series; {r['refresh_s'] / INTERVAL_S:.1%} of one core at one refresh per {INTERVAL_S:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
