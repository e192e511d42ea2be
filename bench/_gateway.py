"""A local SMS/voice/chat gateway for benchmarks: accepts signed webhook calls (Standard
Webhooks, MESSAGING_GATEWAY_SECRET), counts each webhook-id once, and answers GET /count.

    python bench/_gateway.py PORT SECRET
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import uvicorn
from fastapi import FastAPI, Request, Response

from messaging.gateway import BadSignature, verify

app = FastAPI()
seen: set[str] = set()
kinds: Counter[str] = Counter()


@app.post("/{channel}")
async def take(channel: str, request: Request) -> Response:
    body = await request.body()
    try:
        webhook_id = verify(SECRET, request.headers, body, time.time(), 300)
    except BadSignature:
        return Response(status_code=401)
    if webhook_id not in seen:
        seen.add(webhook_id)
        kinds[(await request.json())["kind"]] += 1
    return Response(status_code=202)


@app.get("/count")
async def count() -> dict:
    return {"accepted": len(seen), "by_kind": dict(kinds)}


if __name__ == "__main__":
    SECRET = sys.argv[2]
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
