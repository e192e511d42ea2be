"""Periodic work, each an idempotent use case safe on several replicas."""

from __future__ import annotations

from common.runtime import Runtime
from messaging.service import MessagingService

FOLLOW_UP_INTERVAL_S = 300.0  # unanswered feedback is a matter of hours: every five minutes is soon enough
DIGEST_INTERVAL_S = 30.0  # digests are minutes apart: looking twice a minute keeps them on time


def schedule(runtime: Runtime, service: MessagingService) -> None:
    runtime.every("messages-send", service.send_due, service.settings.send_interval_s)
    runtime.every("checkin-reminders", service.remind_before_cutoff)
    runtime.every("feedback-follow-ups", service.follow_up_unanswered, FOLLOW_UP_INTERVAL_S)
    if service.settings.ticket_digest_minutes > 0:
        runtime.every("ticket-digests", service.send_digests, DIGEST_INTERVAL_S)
    runtime.every("messaging-retention", service.privacy.apply_retention, service.settings.retention_interval_s)
