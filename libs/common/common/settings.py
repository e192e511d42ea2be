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

# deploy/kafka/kafka.sh keeps the local broker's CA and principals' credentials here; found
# from the source tree so that a service started from any directory reads the same ones.
_REPO = Path(__file__).resolve().parents[3]
LOCAL_KAFKA_DIR = _REPO / "var" / "kafka"


PROJECT_ROOT = Path(__file__).resolve().parents[3]  # libs/common/common/settings.py
DEVELOPMENT_PORTAL_URL = "http://127.0.0.1:8000"  # `make up`'s portal: trusted by a loopback stack only
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def env_files() -> tuple[str, ...]:
    """`make up` writes the stack's generated secrets to var/firstline.env under the project
    root (or FIRSTLINE_VAR), wherever the process was started from."""
    if "FIRSTLINE_ENV_FILE" in os.environ:
        return (os.environ["FIRSTLINE_ENV_FILE"],)
    var = Path(os.environ.get("FIRSTLINE_VAR") or PROJECT_ROOT / "var")
    return (str(var / "firstline.env"),)


class StackSettings(BaseSettings):
    """What every service and the `firstline` command agree on."""

    model_config = SettingsConfigDict(env_file=env_files(), extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=AliasChoices("FIRSTLINE_ENV")
    )
    # Tokens: the portal signs them with the keys in keys_dir (only the portal and an
    # operator's command line hold that directory); services verify with the JWKS.
    portal_url: str = Field(DEVELOPMENT_PORTAL_URL, validation_alias=AliasChoices("FIRSTLINE_PORTAL_URL"))
    keys_dir: str = Field("var/keys", validation_alias=AliasChoices("FIRSTLINE_KEYS_DIR"))
    # Default: the portal's /.well-known/jwks.json; may be a file: path; with an OIDC issuer
    # and no JWKS URL, the issuer's discovery document names it.
    jwks_url: str | None = Field(None, validation_alias=AliasChoices("FIRSTLINE_JWKS_URL"))
    # Default: the portal's /.well-known/revoked-sessions; "" turns the check off.
    revocations_url: str | None = Field(None, validation_alias=AliasChoices("FIRSTLINE_REVOCATIONS_URL"))
    oidc_issuer: str = Field("", validation_alias=AliasChoices("FIRSTLINE_OIDC_ISSUER"))
    timezone: str = Field("Asia/Shanghai", validation_alias=AliasChoices("FIRSTLINE_TIMEZONE"))
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"))
    kafka_replication_factor: int = Field(1, validation_alias=AliasChoices("FIRSTLINE_KAFKA_REPLICATION"))
    # How clients authenticate (common.kafka builds every client from these). The local broker
    # speaks SASL_SSL with SCRAM-SHA-512; a managed cluster is named by the same settings.
    kafka_security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT", "SSL", "PLAINTEXT"] = Field(
        "SASL_SSL", validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", validation_alias=AliasChoices("KAFKA_SASL_MECHANISM")
    )
    # The CA that signed the broker's certificate; empty: the system's trusted CAs.
    kafka_ssl_cafile: str = Field(
        str(LOCAL_KAFKA_DIR / "tls" / "ca.crt"), validation_alias=AliasChoices("KAFKA_SSL_CAFILE")
    )
    # One `<principal>.json` ({"username", "password"}) per principal, mode 0600.
    kafka_credentials_dir: str = Field(
        str(LOCAL_KAFKA_DIR / "credentials"), validation_alias=AliasChoices("KAFKA_CREDENTIALS_DIR")
    )
    # Credentials given directly (a container, a managed cluster): used when the principal
    # has no file in kafka_credentials_dir.
    kafka_username: str = Field("", validation_alias=AliasChoices("KAFKA_USERNAME"))
    kafka_password: str = Field("", validation_alias=AliasChoices("KAFKA_PASSWORD"))
    # FastAPI's native OpenTelemetry (spans, metrics and logs through the global providers).
    opentelemetry: bool = Field(False, validation_alias=AliasChoices("FIRSTLINE_OPENTELEMETRY"))

    @model_validator(mode="after")
    def _secrets_are_real_outside_development(self) -> StackSettings:
        portal = self.portal_url.rstrip("/")
        if self.jwks_url is None:
            self.jwks_url = "" if self.oidc_issuer else f"{portal}/.well-known/jwks.json"
        if self.revocations_url is None:
            self.revocations_url = "" if self.oidc_issuer else f"{portal}/.well-known/revoked-sessions"
        if self.environment == "production" and self.kafka_security_protocol != "SASL_SSL":
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol} but production requires "
                "SASL_SSL: the broker must authenticate every client over TLS"
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
    kafka_principal: str = ""  # whose Kafka credentials the service uses (default: the service)
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
    # Sent rows of events carrying health data (common/retention.py) go sooner; 0: as the others.
    outbox_health_retention_hours: float = 24.0
    # Pipeline health (/pipelinez, firstline_pipeline_healthy): the oldest unpublished event
    # may be this old, and a consumer with lag may commit nothing for this long.
    pipeline_max_outbox_age_s: float = 120.0
    pipeline_stall_s: float = 120.0
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
        if not self.kafka_principal:
            self.kafka_principal = self.service
        if self.environment == "production" and self.database_url.startswith("sqlite"):
            raise ValueError(f"{self.service}: set a PostgreSQL database URL in production")
        if self.environment == "production" and self.kafka_enabled:
            from common.kafka import credentials

            credentials(self, self.kafka_principal)  # fails with what is missing
        return self

    @model_validator(mode="after")
    def _fail_closed_outside_a_loopback_development_stack(self) -> ServiceSettings:
        # Tokens are trusted by the JWKS they verify against: only a loopback development stack
        # may fall back on the portal at its development address.
        loopback_development = self.environment != "production" and self.host in LOOPBACK_HOSTS
        development_portal = (
            self.portal_url.rstrip("/") == DEVELOPMENT_PORTAL_URL
            and not self.oidc_issuer
            and self.jwks_url == f"{DEVELOPMENT_PORTAL_URL}/.well-known/jwks.json"
        )
        if development_portal and not loopback_development:
            raise ValueError(
                f"{self.service} listens on {self.host} ({self.environment}): set FIRSTLINE_PORTAL_URL (the portal "
                "whose JWKS verifies tokens), FIRSTLINE_JWKS_URL or FIRSTLINE_OIDC_ISSUER"
            )
        return self
