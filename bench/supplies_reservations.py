"""Reservations per second on PostgreSQL under concurrent clients, and the oversells (must be 0).

    deploy/postgres/postgres.sh start
    .venv/bin/python bench/supplies_reservations.py [--clients 32] [--attempts 3000] [--stock 2000]

The supplies app runs in-process (HTTP through ASGI, Kafka off: events stay in the outbox,
as they would while the relay catches up). Each client posts `POST /reservations` for one
unit, one after another; more reservations are attempted than there is stock, so the end
of the run is a race for the last units. Figures are printed, never asserted on: the
baseline is one client measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import bearer  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _keys import use_bench_keys  # noqa: E402

use_bench_keys()

from supplies.main import create_app  # noqa: E402
from supplies.models import Reservation, StockBalance  # noqa: E402
from supplies.settings import SuppliesSettings  # noqa: E402


def pg_url() -> str:
    url = os.environ.get("FIRSTLINE_TEST_PG_URL")
    if url:
        return url
    return subprocess.run(
        [str(ROOT / "deploy/postgres/postgres.sh"), "url", "postgres"], check=True, capture_output=True, text=True
    ).stdout.strip()


async def scenario(base_url: str, *, clients: int, attempts: int, stock: int, items: int) -> dict:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    dsn = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
        app = create_app(
            SuppliesSettings(database_url=url, kafka_enabled=False, jobs_interval_s=0, log_level="WARNING")
        )
        async with app.router.lifespan_context(app):
            officer = bearer("supplies_officer", "bench")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://supplies", timeout=60) as client:
                depots = []
                for n in range(2):
                    r = await client.post("/depots", json={"name": f"D{n}", "lat": 31, "lon": 121}, headers=officer)
                    depots.append(r.json()["depot_id"])
                item_ids = []
                for n in range(items):
                    r = await client.post(
                        "/items", json={"sku": f"B-{n}", "name": f"item {n}", "unit": "box", "category": "protective", "threshold": 5},
                        headers=officer,
                    )  # fmt: skip
                    item_ids.append(r.json()["item_id"])
                    for d, share in zip(
                        depots, (stock // items * 3 // 5, stock // items - stock // items * 3 // 5), strict=True
                    ):
                        await client.post(
                            "/stock/receipts",
                            json={"item_id": item_ids[-1], "depot_id": d, "quantity": share},
                            headers=officer,
                        )
                total_stock = sum(stock // items for _ in item_ids)
                queue = list(range(attempts))
                latencies: list[float] = []

                async def worker() -> None:
                    while queue:
                        n = queue.pop()
                        body = {"request_id": f"R-{n}", "lines": [{"item_id": item_ids[n % items], "quantity": 1}]}
                        t0 = time.perf_counter()
                        response = await client.post("/reservations", json=body, headers=officer)
                        latencies.append(time.perf_counter() - t0)
                        response.raise_for_status()

                started = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(clients)))
                elapsed = time.perf_counter() - started
            async with app.state.runtime.db.session() as session:
                held = await session.scalar(select(func.count()).where(Reservation.status == "held"))
                reserved = await session.scalar(select(func.sum(StockBalance.reserved)))
                overdrawn = await session.scalar(
                    select(func.count()).where(StockBalance.reserved > StockBalance.on_hand)
                )
            audit = await app.state.service.audit()
        latencies.sort()
        return {
            "clients": clients,
            "items": items,
            "attempts": attempts,
            "stock": total_stock,
            "held": held,
            "oversold": max(held - total_stock, 0) + overdrawn + (0 if abs(reserved - held) < 1e-6 else 1),
            "consistent": audit["consistent"],
            "per_second": attempts / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--attempts", type=int, default=3000)
    parser.add_argument("--stock", type=int, default=2000)
    args = parser.parse_args()
    url = pg_url()
    runs = [
        ("baseline: 1 client, 1 item", dict(clients=1, items=1)),
        (f"{args.clients} clients, 1 hot item", dict(clients=args.clients, items=1)),
        (f"{args.clients} clients, 8 items", dict(clients=args.clients, items=8)),
    ]
    results = []
    for label, options in runs:
        result = await scenario(url, attempts=args.attempts, stock=args.stock, **options)
        results.append((label, result))
    base = results[0][1]["per_second"]
    print(f"PostgreSQL reservations: {args.attempts} attempts of 1 unit for {args.stock} units (2 depots)")
    print(
        f"{'scenario':32} {'res/s':>8} {'x base':>7} {'p50 ms':>7} {'p95 ms':>7} {'held':>6} {'oversold':>9} {'ledger ok':>9}"
    )
    for label, r in results:
        print(
            f"{label:32} {r['per_second']:8.1f} {r['per_second'] / base:7.2f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} "
            f"{r['held']:6d} {r['oversold']:9d} {r['consistent']!s:>9}"
        )


if __name__ == "__main__":
    asyncio.run(main())
