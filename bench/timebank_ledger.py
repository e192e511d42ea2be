"""Time-bank ledger throughput: how many transfers a second, and what locking costs.

    .venv/bin/python bench/timebank_ledger.py [--n 400] [--pg postgresql+asyncpg://...]

Figures, all measured in the same run on the same database:
- staff credits one after another (the baseline),
- the same with 8 concurrent writers (every credit locks the pool's row: how much do
  concurrent writers still gain?),
- RequestFulfilled events applied by the consumer in batches of 100 vs one per transaction,
- 8 writers racing to spend one member's hours (the hot-account case).
Prints figures and ratios; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "timebank"))

import asyncpg  # noqa: E402
from events import record  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from common.clock import ManualClock  # noqa: E402
from common.errors import Conflict  # noqa: E402
from common.events.dispatch import RequestFulfilled, RequestRaised  # noqa: E402
from timebank.domain import Actor  # noqa: E402
from timebank.main import create_app  # noqa: E402
from timebank.settings import TimebankSettings  # noqa: E402

STAFF = Actor("bench", "command")


async def run(url: str, n: int) -> dict[str, float]:
    clock = ManualClock(datetime.now(UTC))
    app = create_app(
        TimebankSettings(database_url=url, kafka_enabled=False, jobs_interval_s=0, log_level="WARNING"), clock=clock
    )
    service, consumer = app.state.service, app.state.consumer
    figures: dict[str, float] = {}
    async with app.router.lifespan_context(app):
        members = [f"B{i}" for i in range(8)]
        for m in members:
            await service.register_member(STAFF, m, m, "volunteer")

        started = time.perf_counter()
        for i in range(n):
            await service.credit(STAFF, members[i % 8], 0.25, "patrol", "bench")
        figures["credits/s sequential"] = n / (time.perf_counter() - started)

        async def writer(member: str, count: int) -> None:
            for _ in range(count):
                await service.credit(STAFF, member, 0.25, "patrol", "bench")

        started = time.perf_counter()
        await asyncio.gather(*(writer(m, n // 8) for m in members))
        figures["credits/s 8 writers"] = (n // 8 * 8) / (time.perf_counter() - started)

        async def fulfilled() -> list:
            request_ids = [uuid.uuid4().hex for _ in range(n)]
            for request_id in request_ids:  # the time bank credits only requests it saw raised (not timed)
                await service.request_raised(
                    RequestRaised(
                        request_id=request_id,
                        resident_id="R1",
                        category="groceries",
                        priority="normal",
                        due_by=clock.now(),
                    )
                )
            return [
                record(
                    RequestFulfilled(request_id=request_id, volunteer_id=members[i % 8], service_minutes=30),
                    clock.now(),
                )[0]
                for i, request_id in enumerate(request_ids)
            ]

        batch = await fulfilled()
        started = time.perf_counter()
        for i in range(0, n, 100):
            await consumer.handle(batch[i : i + 100])
        figures["events/s batches of 100"] = n / (time.perf_counter() - started)
        single = await fulfilled()
        started = time.perf_counter()
        for message in single:
            await consumer.handle([message])
        figures["events/s one per transaction"] = n / (time.perf_counter() - started)

        await service.register_member(STAFF, "HOT", "hot", "volunteer")
        await service.credit(STAFF, "HOT", 8, "patrol", "bench")  # 800 hundredths: 32 spends of 0.25 h

        async def spender() -> tuple[int, int]:
            won = lost = 0
            for _ in range(8):
                try:
                    await service.redeem(STAFF, "HOT", 0.25, "other")
                    won += 1
                except Conflict:
                    lost += 1
            return won, lost

        started = time.perf_counter()
        results = await asyncio.gather(*(spender() for _ in range(8)))
        elapsed = time.perf_counter() - started
        figures["hot-account spends/s 8 writers"] = 64 / elapsed
        figures["hot-account spends won (of 64, 32 affordable)"] = sum(w for w, _ in results)
        audit = await service.audit()
        figures["ledger balanced (1 = yes)"] = 1.0 if audit["balanced"] else 0.0
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--pg", help="PostgreSQL URL of a server (a scratch database is created and dropped)")
    args = parser.parse_args()
    targets: list[tuple[str, str]] = []
    scratch = tempfile.TemporaryDirectory()
    targets.append(("sqlite", f"sqlite+aiosqlite:///{scratch.name}/bench.db"))
    admin = None
    if args.pg:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(
            make_url(args.pg).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        )
        await admin.execute(f'CREATE DATABASE "{name}"')
        targets.append(("postgres", make_url(args.pg).set(database=name).render_as_string(hide_password=False)))
    try:
        for backend, url in targets:
            figures = await run(url, args.n)
            base = figures["credits/s sequential"]
            print(f"\n{backend} (n={args.n})")
            for key, value in figures.items():
                ratio = f"  ({value / base:.2f}x baseline)" if key.endswith("/s") or "/s " in key else ""
                print(f"  {key:48s} {value:10.1f}{ratio}")
    finally:
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
        scratch.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
