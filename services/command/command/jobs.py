"""Periodic command-center work. Each job is an idempotent use case, safe on several
replicas: the unique (ticket, level) escalation row decides who acts, not timing."""

from __future__ import annotations

from command.service import CommandService
from common.runtime import Runtime


def schedule(runtime: Runtime, service: CommandService) -> None:
    runtime.every("command-escalations", service.escalate_overdue)
    runtime.every("command-retention", service.privacy.apply_retention, service.settings.retention_interval_s)
