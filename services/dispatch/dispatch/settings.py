"""Dispatch settings: environment variables prefixed DISPATCH_ (e.g. DISPATCH_DEPOT_LAT=31.23)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files


class DispatchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCH_", env_file=env_files(), extra="ignore")

    service: str = "dispatch"
    port: int = 8003
    # The depot every delivery run starts from and returns to (the community's supply room).
    depot_id: str = "D1"
    depot_lat: float = 31.2304
    depot_lon: float = 121.4737
    slot_hours: float = 3.0  # default length of a delivery slot planned by POST /runs/plan
    speed_kmh: float = 14.0  # a volunteer on an e-bike inside the compound
    service_minutes_per_stop: float = 5.0
    plan_time_limit_s: float = 4.0  # OR-Tools search time per plan
    # Road-network distances: an OSRM server (e.g. http://127.0.0.1:5000); unset: haversine.
    osrm_url: str | None = None
    osrm_profile: str = "driving"
    osrm_timeout_s: float = 10.0
    # Surge detection: the latest window against the windows of the baseline period.
    surge_window_hours: float = 6.0
    surge_baseline_days: int = 7
    surge_alpha: float = 0.01
    surge_min_count: int = 3
    # Green channel: raise a refill this many days before it is due, unless the recurrence says otherwise.
    refill_lead_days: int = 2
    timebank_default_category: str = "other"
    # Retention (docs/privacy.md), in days; 0 keeps for ever. Job "dispatch-retention".
    retention_closed_request_days: float = Field(default=90, ge=0)  # fulfilled or cancelled requests, delivery runs
    retention_interval_s: float = Field(default=3600, gt=0)
