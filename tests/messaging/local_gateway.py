"""A real gateway for tests: an HTTP server on a free local port that checks every call's
Standard Webhooks signature, keeps what it accepted, de-duplicates on webhook-id as a
provider should, and can be told to refuse some channels or phones."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request, Response

from messaging.gateway import BadSignature, verify
from support import wait_for


@dataclass
class Call:
    channel: str
    webhook_id: str
    body: dict


@dataclass
class LocalGateway:
    secret: str
    calls: list[Call] = field(default_factory=list)  # every call that was signed right, accepted or not
    refuse_channels: set[str] = field(default_factory=set)
    refuse_phones: set[str] = field(default_factory=set)
    bad_signatures: int = 0
    hold: asyncio.Event | None = None  # when set: calls to `hold_for` wait for it before answering (a send in flight)
    hold_for: str | None = None
    port: int = 0

    def __post_init__(self) -> None:
        self.app = FastAPI()
        self.app.post("/{channel}")(self._take)
        self.held = asyncio.Event()  # set once a call is waiting on `hold`

    async def _take(self, channel: str, request: Request) -> Response:
        body = await request.body()
        try:
            webhook_id = verify(self.secret, request.headers, body, time.time(), 300)
        except BadSignature:
            self.bad_signatures += 1
            return Response(status_code=401)
        payload = json.loads(body)
        self.calls.append(Call(channel, webhook_id, payload))
        if self.hold is not None and payload["to"]["id"] == self.hold_for:
            self.held.set()
            await self.hold.wait()
        if channel in self.refuse_channels or payload["to"]["phone"] in self.refuse_phones:
            return Response(status_code=503)
        return Response(status_code=202)

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{channel}"

    def accepted(self, channel: str | None = None) -> list[Call]:
        """Accepted calls, once per webhook-id (what reached people)."""
        seen, out = set(), []
        for call in self.calls:
            if (
                call.webhook_id in seen
                or call.channel in self.refuse_channels
                or call.body["to"]["phone"] in self.refuse_phones
            ):
                continue
            if channel is None or call.channel == channel:
                seen.add(call.webhook_id)
                out.append(call)
        return out

    def to(self, recipient: str, kind: str | None = None) -> list[Call]:
        return [
            c for c in self.accepted() if c.body["to"]["id"] == recipient and (kind is None or c.body["kind"] == kind)
        ]

    async def __aenter__(self) -> LocalGateway:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())

        def started() -> bool:
            if self.task.done():
                self.task.result()  # it failed to start: raise why
            return self.server.started

        await wait_for(started, timeout=10, interval=0.01, what="the local gateway to listen")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.should_exit = True
        await self.task
