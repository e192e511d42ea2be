"""Check-in settings: environment variables prefixed CHECKIN_ (e.g. CHECKIN_CUTOFF_TIME=10:00)."""

from __future__ import annotations

from datetime import time

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files


class CheckinSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHECKIN_", env_file=env_files(), extra="ignore")

    service: str = "checkin"
    port: int = 8001
    cutoff_time: time = time(10, 0)  # local: who has not checked in by then is missed
    sweep_window_minutes: int = 120  # the job sweeps today from the cutoff for this long; later: POST /sweeps
    default_community_id: str = "C1"
    sampling_min_completion_rate: float = 0.9
    import_chunk_rows: int = 5000  # rows saved per transaction; an import job reports progress after each
    import_stale_minutes: int = Field(default=10, ge=1)  # a job silent this long lost its replica: marked failed
    checkin_batch_max: int = Field(default=256, ge=1)  # check-ins written per transaction at most (group commit)
    checkin_batch_writers: int = Field(default=2, ge=1)  # such transactions in flight at once (PostgreSQL)
    # Bounds: an upload over import_max_bytes is refused unread (413); a file over
    # import_max_rows rows, or an XLSX whose entries expand past the cap or ratio, is refused (422)
    import_max_bytes: int = Field(default=20_000_000, ge=1)
    import_max_rows: int = Field(default=200_000, ge=1)
    import_xlsx_max_expanded_bytes: int = Field(default=150_000_000, ge=1)
    import_xlsx_max_ratio: float = Field(default=200.0, gt=1)
    # Per-subject rate limits (a token bucket: burst at once, refilled per minute; 0 turns one
    # off); sized above a building lead checking in a whole building. Admins are not limited.
    checkin_rate_per_minute: float = Field(default=1000.0, ge=0)
    checkin_rate_burst: int = Field(default=2000, ge=1)
    import_rate_per_minute: float = Field(default=10.0, ge=0)
    import_rate_burst: int = Field(default=10, ge=1)
    idempotency_key_hours: int = Field(default=24, ge=1)  # how long a caller's Idempotency-Key answers a repeat
    # Retention (docs/privacy.md): records older than this many days are deleted by the job
    # "checkin-retention" (0 keeps them for ever).
    retention_checkin_days: float = Field(default=28, ge=0)  # check-ins, their history, misses, absences, samples
    retention_import_days: float = Field(default=7, ge=0)  # import jobs and their reports of rejected rows
    retention_access_log_days: float = Field(default=365, ge=0)  # who read health records
    retention_interval_s: float = Field(default=3600, gt=0)
    # Who must confirm an erasure (`ResidentErasedBy<Service>`) before it is complete.
    erasure_confirmers: list[str] = Field(default_factory=lambda: ["dispatch", "command", "messaging", "timebank"])
