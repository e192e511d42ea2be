"""What operators read in the logs: every line through one formatter (uvicorn's own too, so
JSON mode prints JSON only), each carrying the HTTP request id or the consumed event's
correlation id."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.config import LOGGING_CONFIG

from common import envelope as ce
from common import logs
from common.events.dispatch import RequestCancelled
from common.outbox import UnitOfWork


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in logs.UVICORN_LOGGERS
    }
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, (handlers, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_uvicorn_lines_go_through_the_service_formatter(capsys) -> None:
    logging.config.dictConfig(LOGGING_CONFIG)  # what uvicorn does before it loads the app
    logs.configure("supplies", "INFO", as_json=True)  # what create_app does
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 4242)
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/healthz", "1.1", 200)
    logging.getLogger("supplies.stock").warning("below its line")
    captured = capsys.readouterr()
    assert captured.out == ""
    entries = lines(captured.err)  # json.loads fails on any line that is not JSON
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("uvicorn.error", "Started server process [4242]"),
        ("uvicorn.access", '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'),
        ("supplies.stock", "below its line"),
    ]
    assert {e["service"] for e in entries} == {"supplies"}


async def test_an_http_request_s_lines_carry_its_id(capsys) -> None:
    logs.configure("dispatch", "INFO", as_json=True)

    async def endpoint(_request) -> PlainTextResponse:
        logging.getLogger("dispatch.requests").info("raising a request")
        return PlainTextResponse("ok")

    app = logs.RequestContext(Starlette(routes=[Route("/requests", endpoint)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        given = await client.get("/requests", headers={"X-Request-ID": "req-from-the-portal"})
        made = await client.get("/requests")
    logging.getLogger("dispatch").info("between requests")
    assert given.headers["x-request-id"] == "req-from-the-portal"
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"] != "req-from-the-portal"
    entries = [e for e in lines(capsys.readouterr().err) if e["logger"].startswith("dispatch")]  # not httpx's own
    assert [e.get("request_id") for e in entries] == ["req-from-the-portal", made.headers["x-request-id"], None]


def test_a_consumed_event_s_lines_carry_its_correlation_id(capsys) -> None:
    logs.configure("timebank", "INFO", as_json=True)
    envelope = ce.wrap(
        RequestCancelled(request_id="RQ-1", reason="moved away"), at=datetime.now(UTC), correlation_id="corr-42"
    )
    uow = UnitOfWork(db=None, clock=None)  # type: ignore[arg-type]  # no transaction is opened here
    uow.cause = envelope  # as the consumer runner does around each handler
    logging.getLogger("timebank.redemptions").info("refunding")
    uow.cause = None
    logging.getLogger("timebank").info("batch committed")
    entries = lines(capsys.readouterr().err)
    assert [(e["message"], e.get("correlation_id")) for e in entries] == [
        ("refunding", "corr-42"),
        ("batch committed", None),
    ]


def test_text_mode_appends_the_context(capsys) -> None:
    logs.configure("checkin", "INFO", as_json=False)
    token = logs.request_id.set("abc123")
    try:
        logging.getLogger("checkin").info("checked in")
    finally:
        logs.request_id.reset(token)
    assert capsys.readouterr().err.rstrip().endswith("checkin INFO checkin: checked in [request_id=abc123]")
