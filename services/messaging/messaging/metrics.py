"""Messaging figures for Prometheus (`firstline_messaging_...`), computed from the record by
a periodic refresh. Labels are kinds, channels, statuses and outcomes: bounded; never a person."""

from __future__ import annotations

from common.metrics import DomainMetrics, Family, Values
from common.runtime import Runtime
from messaging.service import MessagingService

REFRESH_INTERVAL_S = 10.0


class MessagingMetrics:
    def __init__(self, runtime: Runtime, service: MessagingService) -> None:
        self.runtime = runtime
        self.service = service
        m = self.domain = DomainMetrics(runtime.registry, "messaging")
        self.messages = m.gauge(
            "firstline_messaging_messages",
            "Messages in the record by kind, channel and status",
            ("kind", "channel", "status"),
        )
        self.replies = m.counter(
            "firstline_messaging_replies_total", "Replies heard, by channel and outcome", ("channel", "outcome")
        )

    def schedule(self) -> None:
        self.runtime.every("metrics", self.refresh, interval_s=REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        await self.domain.refresh(self.compute)

    async def compute(self) -> dict[Family, Values]:
        messages = await self.service.figures()
        replies = await self.service.reply_figures()
        return {
            self.messages: {(kind, channel, status): n for kind, channel, status, n in messages},
            self.replies: {(channel, outcome): n for channel, outcome, n in replies},
        }
