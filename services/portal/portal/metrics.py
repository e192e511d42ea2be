"""Portal figures for Prometheus (`firstline_portal_...`): sign-ins by method and outcome,
and the calls the pages make to the services. Labels are bounded: never a person."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class PortalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sign_ins = Counter(
            "firstline_portal_sign_ins",
            "Sign-in attempts by method (household, code, invitation) and outcome",
            ["method", "outcome"],
            registry=registry,
        )
        self.codes_sent = Counter(
            "firstline_portal_codes_requested", "One-time codes asked for (sent or not)", registry=registry
        )
        self.service_calls = Counter(
            "firstline_portal_service_calls",
            "Calls to the services on a person's behalf, by service and answer class",
            ["service", "status"],
            registry=registry,
        )
