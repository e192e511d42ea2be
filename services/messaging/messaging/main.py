"""Wiring only: `create_app(settings)` builds the messaging service; nothing runs at import.

uvicorn --factory messaging.main:app_from_env --port 8006
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from common.clock import Clock
from common.events.messaging import (
    AcknowledgementReceived,
    CheckInReceived,
    FeedbackReceived,
    FeedbackUnanswered,
    ReplyNotUnderstood,
    ResidentErasedByMessaging,
)
from common.runtime import Runtime
from common.web import create_http_app
from messaging import api, handlers, jobs
from messaging.gateway import Gateway, Gateways
from messaging.metrics import MessagingMetrics
from messaging.service import MessagingService
from messaging.settings import MessagingSettings

PUBLISHES = (
    FeedbackReceived,
    AcknowledgementReceived,
    CheckInReceived,
    ReplyNotUnderstood,
    FeedbackUnanswered,
    ResidentErasedByMessaging,
)

DESCRIPTION = """Messaging (消息): the one place that sends messages to people and hears their
replies. Other services publish what happened; messaging decides who hears of it, on which
channel (SMS, voice call, the staff group bot, the page) and in which words (Chinese first,
then English), records every message, and turns replies (1–5, 收到, 打卡 36.5) into events.
Consumes dispatch, command, timebank and checkin events; publishes on `messaging.events.v1`."""


def create_app(
    settings: MessagingSettings | None = None, *, clock: Clock | None = None, gateway: Gateway | None = None
) -> FastAPI:
    settings = settings or MessagingSettings()
    runtime = Runtime(
        settings,
        clock=clock,
        publishes=PUBLISHES,
        migrations_dir=Path(__file__).parent / "migrations",
        description=DESCRIPTION,
    )
    gateways = gateway or Gateways(
        {"sms": settings.sms_url, "voice": settings.voice_url, "chat": settings.chat_url},
        settings.gateway_secret,
        timeout_s=settings.gateway_timeout_s,
        concurrency=settings.send_concurrency,
    )
    service = MessagingService(runtime, settings, gateways)
    consumer = runtime.consume(handlers.consumer(service))
    jobs.schedule(runtime, service)
    MessagingMetrics(runtime, service).schedule()
    app = create_http_app(
        runtime,
        title="FirstLine messaging",
        description=DESCRIPTION,
        routers=[api.router],
        state={"service": service, "consumer": consumer},
    )
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with started(app):
            yield
        if isinstance(gateways, Gateways):
            await gateways.close()

    app.router.lifespan_context = lifespan
    return app


def app_from_env() -> FastAPI:
    return create_app()
