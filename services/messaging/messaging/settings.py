"""Messaging settings: environment variables prefixed MESSAGING_ (e.g. MESSAGING_SMS_URL=https://…)."""

from __future__ import annotations

from datetime import time

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files

DEV_GATEWAY_SECRET = "firstline-development-gateway-secret"


class MessagingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGING_", env_file=env_files(), extra="ignore")

    service: str = "messaging"
    port: int = 8006
    # Gateways (webhooks); a channel without a URL goes to the log and the development outbox page.
    sms_url: str | None = None
    voice_url: str | None = None
    chat_url: str | None = None  # the staff group's WeCom/DingTalk bot, through the provider's relay
    gateway_secret: str = DEV_GATEWAY_SECRET  # signs outbound calls and verifies inbound ones
    gateway_timeout_s: float = Field(5.0, gt=0)
    signature_tolerance_s: float = Field(300.0, gt=0)  # how old a signed inbound call may be
    # Sending
    send_interval_s: float = Field(0.5, gt=0)  # how often the sender looks for due messages
    send_batch: int = Field(500, ge=1)
    send_concurrency: int = Field(32, ge=1)  # calls in flight to the gateways at once
    send_max_attempts: int = Field(5, ge=1)
    send_retry_backoff_s: float = Field(30.0, ge=0)
    send_lease_s: float = Field(60.0, gt=0)  # a claimed message is retried after this if its sender died
    quiet_hours_start: time = time(21, 0)  # local; texts and calls wait until the end unless urgent
    quiet_hours_end: time = time(7, 0)
    rate_limit_per_hour: int = Field(6, ge=0)  # messages a person receives in an hour at most (0: no limit)
    # Check-in reminders (local times, as checkin's cutoff)
    reminder_time: time = time(9, 0)
    cutoff_time: time = time(10, 0)
    # A non-urgent ticket's owner hears of it in a digest, at most one per owner this often
    # (urgent tickets at once); 0: every ticket at once.
    ticket_digest_minutes: float = Field(15.0, ge=0)
    # A volunteer's thank-you waits this long for the resident's words about the request.
    thanks_wait_minutes: float = Field(120.0, ge=0)
    # Feedback invitations unanswered this long become a call task for the grid worker.
    feedback_wait_hours: float = Field(24.0, gt=0)
    reply_window_days: int = Field(7, ge=1)  # a reply answers the last message awaiting one, sent this recently
    portal_url: str = "http://127.0.0.1:8000"  # links in messages
    # Alertmanager's webhook (POST /alerts) sends `Authorization: Bearer <this>`; unset: the door is shut.
    alerts_token: str | None = None
    alerts_recipient: str = "staff-group"  # the staff chat group alerts go to
    # Retention (docs/privacy.md), in days; 0 keeps for ever. Job "messaging-retention".
    retention_message_days: float = Field(default=90, ge=0)  # messages sent (or given up) and replies heard
    retention_checkin_days: float = Field(default=28, ge=0)  # who checked in on which day (for reminders)
    retention_closed_ticket_days: float = Field(default=180, ge=0)  # what messaging knows of closed tickets
    retention_interval_s: float = Field(default=3600, gt=0)

    @model_validator(mode="after")
    def _gateway_secret_is_real_in_production(self) -> MessagingSettings:
        if self.environment == "production" and (
            self.gateway_secret == DEV_GATEWAY_SECRET or len(self.gateway_secret) < 32
        ):
            raise ValueError("MESSAGING_GATEWAY_SECRET must be set to a secret of at least 32 characters in production")
        return self
