"""Command-center settings: environment variables prefixed COMMAND_ (e.g. COMMAND_MEETING_TIME=09:00)."""

from __future__ import annotations

from datetime import time

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files


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
    # Retention (docs/privacy.md), in days; 0 keeps for ever. Job "command-retention".
    retention_closed_ticket_days: float = Field(default=180, ge=0)  # tickets after closing, with their history
    retention_checkin_days: float = Field(default=28, ge=0)  # check-in facts and heat-map signals
    retention_access_log_days: float = Field(default=365, ge=0)
    retention_interval_s: float = Field(default=3600, gt=0)
