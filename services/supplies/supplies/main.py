"""Wiring only: `create_app(settings)` builds the supplies service; nothing runs at import.

uvicorn --factory supplies.main:app_from_env --port 8002
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from common.clock import Clock
from common.events.supplies import (
    ReservationRejected,
    ReservationReleased,
    StockExpiring,
    StockLow,
    StockOut,
    StockReserved,
    StockRestored,
    TransferSuggested,
)
from common.runtime import Runtime
from common.web import create_http_app
from supplies import api, handlers, jobs
from supplies.metrics import SuppliesMetrics
from supplies.service import SuppliesService
from supplies.settings import SuppliesSettings

PUBLISHES = (
    StockLow,
    StockOut,
    StockRestored,
    StockExpiring,
    TransferSuggested,
    StockReserved,
    ReservationRejected,
    ReservationReleased,
)

DESCRIPTION = """An auditable stock ledger of protective gear, disinfectant, test kits, food
packages and medicines across the community's depots: receipts, issues, transfers and
adjustments; batches issued first-expiring-first; alerts on static minimums and days of
cover; reservations for deliveries; suggested transfers between depots.
Publishes on `supplies.events.v1`; consumes `RequestRaised`, `RequestCancelled` and
`RequestFulfilled` from `dispatch.events.v1`."""


def create_app(settings: SuppliesSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or SuppliesSettings()
    runtime = Runtime(
        settings,
        clock=clock,
        publishes=PUBLISHES,
        migrations_dir=Path(__file__).parent / "migrations",
        description=DESCRIPTION,
    )
    service = SuppliesService(runtime, settings)
    runtime.consume(handlers.consumer(service))
    jobs.schedule(runtime, service)
    SuppliesMetrics(runtime, service).schedule()
    return create_http_app(
        runtime,
        title="FirstLine supplies",
        description=DESCRIPTION,
        routers=[api.router],
        state={"service": service},
    )


def app_from_env() -> FastAPI:
    return create_app()
