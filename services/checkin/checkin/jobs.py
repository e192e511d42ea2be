"""Periodic check-in work. Each job is an idempotent use case, safe on several replicas:
database uniqueness decides who acts, not timing."""

from __future__ import annotations

from checkin.service import CheckinService
from common.runtime import Runtime


def schedule(runtime: Runtime, service: CheckinService) -> None:
    runtime.every("checkin-cutoff-sweep", service.sweep_at_cutoff)
    runtime.every("checkin-sampling-deadlines", service.evaluate_rounds)
    runtime.every("checkin-idempotency-keys", service.forget_old_idempotency_keys)
    runtime.every("checkin-interrupted-imports", service.fail_interrupted_imports)
    runtime.every("checkin-retention", service.apply_retention, service.settings.retention_interval_s)
