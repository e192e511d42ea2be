"""Command-center settings: environment variables prefixed COMMAND_ (e.g. COMMAND_MEETING_TIME=09:00)."""

from __future__ import annotations

from datetime import time

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import LOOPBACK_HOSTS, ServiceSettings, env_files

DEV_PARTNER_REFERENCE_KEY = "firstline-development-partner-reference-key"


class CommandSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMMAND_", env_file=env_files(), extra="ignore")

    service: str = "command"
    port: int = 8005
    # A sweep's missed check-ins arrive by the thousand: bigger batches, fewer commits; the price
    # is a longer one-by-one replay of a batch that holds a failing event (docs/performance.md).
    consumer_max_records: int = 5000
    outbox_batch_size: int = 10000  # ... and become as many TicketOpened: fewer, bigger relay passes
    consumer_topics: list[str] | None = None  # unset: checkin, supplies and dispatch events (a replay may name others)
    rules_file: str | None = None  # YAML with departments, people, rules, sla; unset: the packaged defaults
    seed_defaults: bool = True  # load the rules file into empty tables on first use
    config_cache_s: float = 5.0  # how long a replica trusts its copy of rules and directory
    meeting_time: time = time(9, 0)  # local time of the daily meeting (每日例会)
    escalation_repeat_minutes: int = Field(60, gt=0)  # still overdue this long after an escalation: next level
    escalation_max_level: int = Field(3, ge=1)
    escalation_batch: int = 200
    h3_resolution: int = Field(9, ge=0, le=15)  # ~0.1 km² cells: a few buildings each
    # Keys each partner department's reference to a ticket (an HMAC of the ticket id under a
    # key derived per department): property's and police's topics cannot be joined with
    # partner.health.v1 or with each other without it. Changing it changes every reference.
    partner_reference_key: str = DEV_PARTNER_REFERENCE_KEY
    # Reports by hand per reporter (a token bucket: burst at once, refilled per minute; 0: off).
    report_rate_per_minute: float = Field(60.0, ge=0)
    report_rate_burst: int = Field(120, ge=1)
    heatmap_max_days: int = Field(14, ge=1, le=366)  # how far back the heat map may look
    heatmap_min_count: int = Field(5, ge=1)  # a health kind's cell with fewer is not shown (k-anonymity)

    # Retention (docs/privacy.md), in days; 0 keeps for ever. Job "command-retention".
    retention_closed_ticket_days: float = Field(default=180, ge=0)  # tickets after closing, with their history
    retention_checkin_days: float = Field(default=28, ge=0)  # check-in facts and heat-map signals
    retention_access_log_days: float = Field(default=365, ge=0)
    retention_interval_s: float = Field(default=3600, gt=0)

    @property
    def reference_key(self) -> bytes:
        return self.partner_reference_key.encode()

    @model_validator(mode="after")
    def _reference_key_is_real_outside_development(self) -> CommandSettings:
        loopback_development = self.environment != "production" and self.host in LOOPBACK_HOSTS
        weak = self.partner_reference_key == DEV_PARTNER_REFERENCE_KEY or len(self.partner_reference_key) < 32
        if weak and not loopback_development:
            raise ValueError(
                f"command listens on {self.host} ({self.environment}): set COMMAND_PARTNER_REFERENCE_KEY to a secret "
                "of at least 32 characters (it keys partner departments' ticket references)"
            )
        return self
