"""Periodic dispatch work. Each job is an idempotent use case, safe on several replicas:
database uniqueness (overdue notice per assignment, refill per due date, surge per
window) decides who acts, not timing."""

from __future__ import annotations

from common.runtime import Runtime
from dispatch.service import DispatchService


def schedule(runtime: Runtime, service: DispatchService) -> None:
    runtime.every("dispatch-assign-pending", service.assign_pending)
    runtime.every("dispatch-overdue", service.sweep_overdue)
    runtime.every("dispatch-green-channel", service.raise_refills)
    runtime.every("dispatch-demand-surge", service.detect_surges)
    runtime.every("dispatch-retention", service.privacy.apply_retention, service.settings.retention_interval_s)
