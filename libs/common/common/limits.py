"""Bounds on what a request may bring in: a body size limit (413 before the body is read
whole), validation answers that never echo the input, per-subject rate limits (429 with
`Retry-After`), and text made safe for spreadsheets and chat."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import TooManyRequests

MAX_TEXT = 4000  # characters: the longest free text a request body may carry in one field
MAX_PAGE = 1000  # rows: the most a list endpoint answers at once


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Answers 413 to a request whose body exceeds its limit: at once when Content-Length
    says so, else as soon as the streamed body passes it (nothing more is read)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, paths: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = dict(paths or {})  # path -> its own limit (an upload route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _too_large(limit, send)
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(limit, send)


async def _too_large(limit: int, send: Send) -> None:
    body = json.dumps({"detail": f"the request body is larger than this service accepts ({limit:,} bytes)"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def validation_errors(errors: Sequence[dict]) -> list[dict]:
    """Pydantic's errors without the values sent: where (`loc`), what (`msg`, `type`)."""
    return [
        {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type", "")}
        for error in errors
    ]


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_errors(exc.errors())}, status_code=422)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """A token bucket per subject: `burst` requests at once, refilled at `per_minute`.
    In-process: each replica counts its own requests. `per_minute <= 0` turns it off."""

    def __init__(
        self,
        what: str,
        *,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_subjects: int = 100_000,
    ) -> None:
        self.what = what
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self.clock = clock
        self.max_subjects = max_subjects
        self._buckets: dict[str, _Bucket] = {}

    def check(self, subject: str, cost: float = 1.0) -> None:
        """Spends `cost` of the subject's allowance, or raises TooManyRequests."""
        if self.rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(subject)
        if bucket is None:
            if len(self._buckets) >= self.max_subjects:
                self._forget_full(now)
            bucket = self._buckets[subject] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < cost:
            wait = math.ceil((cost - bucket.tokens) / self.rate)
            raise TooManyRequests(f"too many {self.what}: try again in {wait} s", retry_after_s=wait)
        bucket.tokens -= cost

    def _forget_full(self, now: float) -> None:
        # Subjects whose bucket has refilled carry no state worth keeping.
        self._buckets = {
            subject: bucket
            for subject, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.at) * self.rate < self.burst
        }


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "|")


def neutralised(text: str) -> str:
    """Text a spreadsheet or chat will show as text: a leading formula character gets a
    quote before it, and link/markup characters are escaped."""
    text = text.replace("[", "［").replace("]", "］").replace("<", "‹").replace(">", "›")
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused (a misspelt field is an error,
    not silently dropped) and no string is longer than `MAX_TEXT` unless its field says less."""

    model_config = ConfigDict(extra="forbid", str_max_length=MAX_TEXT)


@dataclass(frozen=True)
class Page:
    """A bounded slice of a list answer: at most `limit` rows after skipping `offset`."""

    limit: int
    offset: int

    def of(self, rows: Sequence) -> list:
        return list(rows[self.offset : self.offset + self.limit])


def page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows in the answer, at most {MAX_PAGE}")] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")] = 0,
) -> Page:
    return Page(limit, offset)


Paged = Annotated[Page, Depends(page)]
