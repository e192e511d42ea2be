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
    idempotency_key_hours: int = Field(default=24, ge=1)  # how long a caller's Idempotency-Key answers a repeat
