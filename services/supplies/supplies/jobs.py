"""Periodic supplies work. Each job is an idempotent use case, safe on several replicas:
row locks and unique constraints decide who acts, not timing."""

from __future__ import annotations

from common.runtime import Runtime
from supplies.service import SuppliesService


def schedule(runtime: Runtime, service: SuppliesService) -> None:
    runtime.every("supplies-expiry-warnings", service.warn_expiring)
    runtime.every("supplies-reassess-alerts", service.reassess_all)
    runtime.every("supplies-transfer-suggestions", service.suggest_transfers)
