"""Settings shared by every service. Each service subclasses `ServiceSettings` with its
own prefix (`CHECKIN_`, `COMMAND_`, ...); the names below without a prefix are shared by
the whole stack and read from the environment as written.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "firstline-development-secret-do-not-use-in-production"  # noqa: S105


PROJECT_ROOT = Path(__file__).resolve().parents[3]  # libs/common/common/settings.py
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def env_files() -> tuple[str, ...]:
    """`make up` writes the stack's generated secrets to var/firstline.env under the project
    root (or FIRSTLINE_VAR), wherever the process was started from."""
    if "FIRSTLINE_ENV_FILE" in os.environ:
        return (os.environ["FIRSTLINE_ENV_FILE"],)
    var = Path(os.environ.get("FIRSTLINE_VAR") or PROJECT_ROOT / "var")
    return (str(var / "firstline.env"),)


def weak_secret(secret: str | None) -> bool:
    return not secret or secret == DEV_JWT_SECRET or len(secret) < 32


class StackSettings(BaseSettings):
    """What every service and the `firstline` command agree on."""

    model_config = SettingsConfigDict(env_file=env_files(), extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=AliasChoices("FIRSTLINE_ENV")
    )
    jwt_secret: str = Field(DEV_JWT_SECRET, validation_alias=AliasChoices("FIRSTLINE_JWT_SECRET"))
    jwt_ttl_hours: int = Field(12, validation_alias=AliasChoices("FIRSTLINE_JWT_TTL_HOURS"))
    timezone: str = Field("Asia/Shanghai", validation_alias=AliasChoices("FIRSTLINE_TIMEZONE"))
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_replication_factor: int = Field(1, validation_alias=AliasChoices("FIRSTLINE_KAFKA_REPLICATION"))
    # FastAPI's native OpenTelemetry (spans, metrics and logs through the global providers).
    opentelemetry: bool = Field(False, validation_alias=AliasChoices("FIRSTLINE_OPENTELEMETRY"))

    @model_validator(mode="after")
    def _secrets_are_real_outside_development(self) -> StackSettings:
        if self.environment == "production":
            if self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32:
                raise ValueError(
                    "FIRSTLINE_JWT_SECRET must be set to a secret of at least 32 characters in production"
                )
        ZoneInfo(self.timezone)  # fail fast on a misspelt zone
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ServiceSettings(StackSettings):
    """Base of each service's settings; subclasses set `env_prefix` and `service`."""

    service: str = "service"
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = ""
    log_level: str = "INFO"
    log_json: bool = False
    # Consumers
    consumer_group: str = ""  # the Kafka consumer group and inbox name (default: the service); replicas share it
    consumer_max_records: int = 500
    consumer_max_attempts: int = 5
    consumer_retry_backoff_s: float = 0.2
    # Outbox relay
    outbox_poll_interval_s: float = 0.5
    outbox_batch_size: int = 500
    outbox_publish_timeout_s: float = 30.0
    # Sent rows are deleted this long after they were sent (hourly job "outbox-purge"; Kafka
    # keeps the events for their topic's retention); 0 keeps them for ever.
    outbox_retention_hours: float = 168.0
    # Periodic jobs; 0 turns them off (tests drive jobs by hand)
    jobs_interval_s: float = 30.0
    start_consumers: bool = True
    kafka_enabled: bool = True  # off: events stay in the outbox (tests of one service alone)
    migrate_on_start: bool = True
    # Requests: a body over this many bytes is answered 413 unread (an upload route may have its own)
    max_body_bytes: int = Field(default=1_048_576, ge=0)

    @model_validator(mode="after")
    def _default_database(self) -> ServiceSettings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///var/{self.service}.db"
        if not self.consumer_group:
            self.consumer_group = self.service
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError(f"{self.service}: set a PostgreSQL database URL in production")
        return self

    @model_validator(mode="after")
    def _fail_closed_outside_a_loopback_development_stack(self) -> ServiceSettings:
        # The development secret is public: it may sign tokens only where nobody else can connect.
        loopback_development = self.environment != "production" and self.host in LOOPBACK_HOSTS
        if weak_secret(self.jwt_secret) and not loopback_development:
            raise ValueError(
                f"{self.service} listens on {self.host} ({self.environment}): set FIRSTLINE_JWT_SECRET to a random "
                "secret of at least 32 characters, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self
