"""Wiring only: `create_app(settings)` builds the check-in service; nothing runs at import.

uvicorn --factory checkin.main:app_from_env --port 8001
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from checkin import api, handlers, jobs
from checkin.metrics import CheckinMetrics
from checkin.service import CheckinService
from checkin.settings import CheckinSettings
from common import accesslog
from common.clock import Clock
from common.events.checkin import (
    CheckInMissed,
    CheckInSubmitted,
    HealthAnomalyReported,
    ResidentAway,
    ResidentErased,
    ResidentRegistered,
    SamplingLagging,
)
from common.limits import RateLimiter
from common.runtime import Runtime
from common.web import create_http_app

PUBLISHES = (
    ResidentRegistered,
    ResidentAway,
    ResidentErased,
    CheckInSubmitted,
    CheckInMissed,
    HealthAnomalyReported,
    SamplingLagging,
)

DESCRIPTION = """Residents, daily check-ins, the cutoff sweep of missed check-ins, the grid worker's
follow-up list, completion figures and sampling rounds (核酸).
Publishes on `checkin.events.v1` and, the registry alone (registrations and erasures), `checkin.residents.v1`;
consumes check-ins by reply (`CheckInReceived`) from `messaging.events.v1`, and the confirmations of
an erasure (`ResidentErasedBy<Service>`) from the confirming services' topics."""


def create_app(settings: CheckinSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or CheckinSettings()
    runtime = Runtime(
        settings,
        clock=clock,
        publishes=PUBLISHES,
        migrations_dir=Path(__file__).parent / "migrations",
        description=DESCRIPTION,
    )
    service = CheckinService(runtime, settings)
    runtime.consume(handlers.consumer(service))
    jobs.schedule(runtime, service)
    CheckinMetrics(runtime, service).schedule()
    return create_http_app(
        runtime,
        title="FirstLine check-in",
        description=DESCRIPTION,
        routers=[api.router, accesslog.router],
        state={
            "service": service,
            "access_log": service.access_log,
            "checkin_rate": RateLimiter(
                "check-ins", per_minute=settings.checkin_rate_per_minute, burst=settings.checkin_rate_burst
            ),
            "import_rate": RateLimiter(
                "imports", per_minute=settings.import_rate_per_minute, burst=settings.import_rate_burst
            ),
        },
        body_limits={"/residents/import": settings.import_max_bytes},
    )


def app_from_env() -> FastAPI:
    return create_app()
