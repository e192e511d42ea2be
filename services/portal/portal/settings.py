"""Portal settings: environment variables prefixed PORTAL_ (e.g. PORTAL_PUBLIC_URL)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files


class PortalSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", env_file=env_files(), extra="ignore")

    service: str = "portal"
    port: int = 8000
    kafka_enabled: bool = False  # the portal publishes nothing; it calls the services over HTTP
    # What household links, QR codes and invitations name: the address phones reach.
    public_url: str = "http://127.0.0.1:8000"
    checkin_url: str = "http://127.0.0.1:8001"
    supplies_url: str = "http://127.0.0.1:8002"
    dispatch_url: str = "http://127.0.0.1:8003"
    timebank_url: str = "http://127.0.0.1:8004"
    command_url: str = "http://127.0.0.1:8005"
    messaging_url: str = "http://127.0.0.1:8006"
    service_timeout_s: float = 10.0
    session_hours: float = 12.0  # a signed-in browser's session; a household's lasts as long
    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    otp_per_phone_per_hour: int = 5  # codes sent to one number
    attempts_per_minute: int = 20  # sign-in attempts (codes, household links) from one address
    invitation_hours: float = 72.0
    notifier_url: str | None = None  # the SMS gateway's webhook; unset: codes go to the log (and /dev/outbox)
    notifier_token: str | None = None
    dev_outbox: bool | None = None  # the development outbox page; default: on in development only
    cookie_secure: bool = False  # set behind HTTPS
    chromium: str = "/usr/bin/chromium"  # prints the QR sheet to PDF
    live_updates: bool = True  # pages hear of check-ins at once (server-sent events fed from Kafka)
    desk_poll_s: float = 15.0  # a partner desk's page asks for new urgent tickets this often
    screen_refresh_s: float = 30.0  # the figures screen (数据大屏) reads the figures again this often

    @property
    def dev_outbox_on(self) -> bool:
        return self.environment == "development" if self.dev_outbox is None else self.dev_outbox
