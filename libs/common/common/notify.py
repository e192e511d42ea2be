"""Notifying people outside FirstLine: an SMS or voice-call gateway, a group-chat bot.

`WebhookNotifier` POSTs one JSON object per notification to the gateway's URL:

    {
      "kind": "checkin_reminder",            # or "ticket_escalated", ...
      "channel": "sms",                       # sms | voice | chat
      "to": {"id": "R-…", "name": "王芳", "phone": "13800000000"},
      "text": "王芳，您今天还没有健康打卡，请在10:00前完成。",
      "data": {"date": "2026-11-21", "cutoff": "10:00"},
      "idempotency_key": "checkin_reminder:R-…:2026-11-21"
    }

Any 2xx is success; anything else (or no answer in time) raises `NotifyFailed`, and the
caller retries later. Gateways should de-duplicate on `idempotency_key`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    id: str
    name: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class Notification:
    kind: str
    channel: str
    to: Recipient
    text: str
    idempotency_key: str
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return asdict(self)


class NotifyFailed(Exception):
    pass


class Notifier(Protocol):
    async def notify(self, notification: Notification) -> None: ...


class WebhookNotifier:
    def __init__(self, url: str, *, timeout_s: float = 5.0, token: str | None = None) -> None:
        self.url = url
        self._client = httpx.AsyncClient(
            timeout=timeout_s, headers={"Authorization": f"Bearer {token}"} if token else {}
        )

    async def notify(self, notification: Notification) -> None:
        try:
            response = await self._client.post(self.url, json=notification.body())
        except httpx.HTTPError as exc:
            raise NotifyFailed(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise NotifyFailed(f"{self.url} answered {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self._client.aclose()


class LogNotifier:
    """For development: writes what would have been sent to the log."""

    async def notify(self, notification: Notification) -> None:
        log.info(
            "notify %s via %s to %s: %s", notification.kind, notification.channel, notification.to.id, notification.text
        )


def notifier_for(url: str | None, *, timeout_s: float = 5.0, token: str | None = None) -> Notifier:
    return WebhookNotifier(url, timeout_s=timeout_s, token=token) if url else LogNotifier()
