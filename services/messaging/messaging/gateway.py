"""The gateways: SMS, voice and chat providers reached by webhook, signed as the Standard
Webhooks specification says, in both directions.

Outbound, each message is one POST of JSON to the channel's URL (MESSAGING_SMS_URL,
MESSAGING_VOICE_URL, MESSAGING_CHAT_URL):

    {"message_id": "9f…", "kind": "feedback_invitation", "channel": "sms",
     "to": {"id": "R-…", "phone": "13800000000"}, "text": "【第一道防线】…\\nFirstLine: …",
     "idempotency_key": "<event id>:<recipient>:<kind>", "reply_url": "/inbound/sms"}

with headers `webhook-id` (the message id: the same on every retry, so a gateway that
de-duplicates on it sends a message once even when FirstLine retries after a crash),
`webhook-timestamp` (Unix seconds) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` keyed with MESSAGING_GATEWAY_SECRET).
A 2xx answer means the gateway accepted the message; anything else is retried.

Inbound replies (`POST /inbound/<channel>`) carry the same three headers over their body.
A channel without a URL goes to the log channel (and the development outbox page).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

log = logging.getLogger(__name__)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for a body."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class BadSignature(Exception):
    pass


def verify(secret: str, headers: Any, body: bytes, now_s: float, tolerance_s: float) -> str:
    """Check a signed call; return its webhook-id. Raises BadSignature saying what is wrong."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signatures):
        raise BadSignature("unsigned: send webhook-id, webhook-timestamp and webhook-signature")
    try:
        stamp = int(timestamp)
    except ValueError as exc:
        raise BadSignature("webhook-timestamp must be Unix seconds") from exc
    if abs(now_s - stamp) > tolerance_s:
        raise BadSignature(f"webhook-timestamp is more than {tolerance_s:g} s away from now")
    expected = sign(secret, webhook_id, stamp, body)
    # The header may carry several space-separated signatures (during a key rotation).
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split()):
        raise BadSignature("webhook-signature does not match")
    return webhook_id


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    kind: str
    channel: str
    recipient_id: str
    phone: str | None
    text: str
    idempotency_key: str

    def body(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "channel": self.channel,
            "to": {"id": self.recipient_id, "phone": self.phone},
            "text": self.text,
            "idempotency_key": self.idempotency_key,
            "reply_url": f"/inbound/{self.channel}",
        }


class GatewayFailed(Exception):
    pass


class Gateway(Protocol):
    async def send(self, message: Outgoing) -> str:
        """Hand a message over; returns the status it reached ("accepted" or "sent"), or raises GatewayFailed."""
        ...


class Gateways:
    """One webhook per channel that has a URL; the log channel for the others."""

    def __init__(
        self, urls: dict[str, str | None], secret: str, *, timeout_s: float = 5.0, concurrency: int = 32
    ) -> None:
        self.urls = {channel: url for channel, url in urls.items() if url}
        self.secret = secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # aiohttp, not httpx: a call cost httpx ~3 ms of CPU, which made sending the
        # bottleneck of a fan-out (docs/performance.md, messaging fan-out).
        if self._session is None:  # made on the running loop, at the first send
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency), timeout=self.timeout
            )
        return self._session

    async def send(self, message: Outgoing) -> str:
        url = self.urls.get(message.channel)
        if url is None:
            log.info("message %s (%s) via %s to %s: %s", message.message_id, message.kind, message.channel,
                     message.recipient_id, message.text.replace("\n", " / "))  # fmt: skip
            return "sent"
        body = json.dumps(message.body(), ensure_ascii=False, separators=(",", ":")).encode()
        # The wall clock, not the service's: the gateway checks the timestamp against its own.
        now_s = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": message.message_id,
            "webhook-timestamp": str(now_s),
            "webhook-signature": sign(self.secret, message.message_id, now_s, body),
        }
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                if response.status // 100 != 2:
                    text = (await response.read())[:200].decode(errors="replace")
                    raise GatewayFailed(f"{message.channel} gateway answered {response.status}: {text}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise GatewayFailed(f"{message.channel} gateway: {type(exc).__name__}: {exc}") from exc
        return "accepted"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
