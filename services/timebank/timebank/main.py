"""Wiring only: `create_app(settings)` builds the time bank; nothing runs at import.

uvicorn --factory timebank.main:app_from_env --port 8004
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from common.clock import Clock
from common.events.timebank import (
    CouponIssued,
    CouponRedeemed,
    HoursCredited,
    HoursRedeemed,
    HoursRefunded,
    ResidentErasedByTimebank,
)
from common.runtime import Runtime
from common.web import create_http_app
from timebank import api, handlers
from timebank.metrics import TimebankMetrics
from timebank.service import TimebankService
from timebank.settings import TimebankSettings

PUBLISHES = (HoursCredited, HoursRedeemed, HoursRefunded, CouponIssued, CouponRedeemed, ResidentErasedByTimebank)

DESCRIPTION = """The time bank (时间银行): every hour of service is banked in a double-entry
ledger and can be spent on help for oneself or one's family, or on coupons at local shops;
points (积分) buy rewards, and a monthly leaderboard recognises steady helpers.
Publishes on `timebank.events.v1`; consumes `RequestFulfilled` and `RequestCancelled`
from `dispatch.events.v1`, and `ResidentErased` from `checkin.residents.v1`."""


def create_app(settings: TimebankSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or TimebankSettings()
    runtime = Runtime(
        settings,
        clock=clock,
        publishes=PUBLISHES,
        migrations_dir=Path(__file__).parent / "migrations",
        description=DESCRIPTION,
    )
    service = TimebankService(runtime, settings)
    consumer = runtime.consume(handlers.consumer(service))
    TimebankMetrics(runtime, service).schedule()
    return create_http_app(
        runtime,
        title="FirstLine time bank",
        description=DESCRIPTION,
        routers=[api.router],
        state={"service": service, "consumer": consumer},
    )


def app_from_env() -> FastAPI:
    return create_app()
