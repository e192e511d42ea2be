"""Wiring only: `create_app(settings)` builds the command center; nothing runs at import.

uvicorn --factory command.main:app_from_env --port 8005
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from command import api, handlers, jobs
from command.metrics import CommandMetrics
from command.service import CommandService
from command.settings import CommandSettings
from common import accesslog
from common.clock import Clock
from common.events.command import (
    ResidentErasedByCommand,
    TicketAcknowledged,
    TicketClosed,
    TicketEscalated,
    TicketOpened,
    TicketReassigned,
    TicketReopened,
    TicketResolved,
    TicketUpdated,
)
from common.events.partner import (
    HealthTicketShared,
    PoliceTicketShared,
    PropertyTicketShared,
)
from common.limits import RateLimiter
from common.runtime import Runtime
from common.web import create_http_app

PUBLISHES = (
    TicketOpened, TicketUpdated, TicketAcknowledged, TicketResolved, TicketClosed, TicketReopened, TicketReassigned,
    TicketEscalated, HealthTicketShared, PropertyTicketShared, PoliceTicketShared, ResidentErasedByCommand,
)  # fmt: skip

DESCRIPTION = """The command center (防疫指挥中心): every problem becomes a ticket with an owner
and deadlines, followed from discovery to the resident's feedback; escalation of overdue
tickets, the daily meeting's agenda, the heat map, and minimised partner messages.
Consumes checkin, supplies and dispatch events; publishes on `command.events.v1`
and `partner.<department>.v1`."""


def create_app(settings: CommandSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or CommandSettings()
    runtime = Runtime(
        settings,
        clock=clock,
        publishes=PUBLISHES,
        migrations_dir=Path(__file__).parent / "migrations",
        description=DESCRIPTION,
    )
    service = CommandService(runtime, settings)
    runtime.consume(handlers.consumer(service))
    jobs.schedule(runtime, service)
    CommandMetrics(runtime, service).schedule()
    app = create_http_app(
        runtime,
        title="FirstLine command center",
        description=DESCRIPTION,
        routers=[api.router, accesslog.router],
        state={
            "service": service,
            "access_log": service.privacy.access_log,
            "report_rate": RateLimiter(
                "reports", per_minute=settings.report_rate_per_minute, burst=settings.report_rate_burst
            ),
        },
    )
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with started(app):  # migrations have run: load the default rules into empty tables
            await service.seed()
            yield

    app.router.lifespan_context = lifespan
    return app


def app_from_env() -> FastAPI:
    return create_app()
