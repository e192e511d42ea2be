"""Structured logs: one JSON object a line in production, readable lines in development.

Every record, uvicorn's own included, goes through the one handler `configure` installs,
without the values a database driver or a validator quotes (`sensitivity.redact`), and
carries what it was working on: the HTTP request's id (`RequestContext`) or the correlation
id of the event a consumer is applying (set by the unit of work, `outbox.UnitOfWork.cause`).
"""

from __future__ import annotations

import json
import logging
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.sensitivity import redact

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# uvicorn installs handlers of its own on these; they hand their records to ours instead.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
REQUEST_ID_HEADER = b"x-request-id"
CONTEXT = ("request_id", "correlation_id")


class ContextFilter(logging.Filter):
    """Stamps each record with the request id or correlation id of the task that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.correlation_id = correlation_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT:
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))  # with its traceback: no value a driver quoted
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT if getattr(record, name, None))
        return f"{line} [{context}]" if context else line


def configure(service: str, level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service) if as_json else TextFormatter(service))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


class RequestContext:
    """ASGI middleware: each HTTP request's logs carry its id, the caller's `X-Request-ID`
    or a new one, which the answer echoes so a caller can quote it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == REQUEST_ID_HEADER), None)
        rid = given.decode("latin-1")[:64] if given else uuid.uuid4().hex
        header = (REQUEST_ID_HEADER, rid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
