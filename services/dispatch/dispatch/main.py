"""Wiring only: `create_app(settings)` builds the dispatch service; nothing runs at import.

uvicorn --factory dispatch.main:app_from_env --port 8003
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from common.clock import Clock
from common.events.dispatch import (
    DeliveryFailed,
    DeliveryPlanned,
    DemandSurge,
    RequestAssigned,
    RequestCancelled,
    RequestFulfilled,
    RequestOverdue,
    RequestRaised,
    ResidentErasedByDispatch,
)
from common.runtime import Runtime
from common.web import create_http_app
from dispatch import api, handlers, jobs
from dispatch.metrics import DispatchMetrics
from dispatch.service import DispatchService
from dispatch.settings import DispatchSettings

PUBLISHES = (
    RequestRaised,
    RequestAssigned,
    DeliveryPlanned,
    RequestFulfilled,
    DeliveryFailed,
    RequestCancelled,
    RequestOverdue,
    DemandSurge,
    ResidentErasedByDispatch,
)

DESCRIPTION = """Residents' service requests (one-stop 只跑一次), volunteers, matching by group,
nearness and load, delivery runs planned with OR-Tools, fulfilment, the green channel for
chronic patients, and hot demands with surge detection.
Publishes on `dispatch.events.v1`; consumes `ResidentRegistered` and `ResidentErased` (checkin.residents.v1),
`StockReserved`, `ReservationRejected`, `StockRestored` (supplies.events.v1) and
`HoursRedeemed` (timebank.events.v1); dead letters go to `dispatch.dlq.v1`."""


def create_app(settings: DispatchSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or DispatchSettings()
    runtime = Runtime(
        settings,
        clock=clock,
        publishes=PUBLISHES,
        migrations_dir=Path(__file__).parent / "migrations",
        description=DESCRIPTION,
    )
    service = DispatchService(runtime, settings)
    runtime.consume(handlers.consumer(service))
    jobs.schedule(runtime, service)
    DispatchMetrics(runtime, service).schedule()
    return create_http_app(
        runtime,
        title="FirstLine dispatch",
        description=DESCRIPTION,
        routers=[api.router],
        state={"service": service},
    )


def app_from_env() -> FastAPI:
    return create_app()
