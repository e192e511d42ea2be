"""Supplies settings: environment variables prefixed SUPPLIES_ (e.g. SUPPLIES_EXPIRY_WARNING_DAYS=14)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files


class SuppliesSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SUPPLIES_", env_file=env_files(), extra="ignore")

    service: str = "supplies"
    port: int = 8002
    expiry_warning_days: int = Field(7, ge=0)  # StockExpiring this many days before a batch expires
    consumption_window_days: int = Field(7, ge=1)  # average daily consumption over this many days
    default_lead_time_days: float = Field(3.0, ge=0)  # resupply lead time when an item sets none
    # A depot above lead time x this factor in days of cover can give to one below its lead time.
    surplus_cover_factor: float = Field(2.0, ge=1)
    # Suggested transfers bring a short depot up to lead time x this factor in days of cover.
    target_cover_factor: float = Field(1.5, ge=1)
    min_transfer_quantity: float = Field(1.0, gt=0)  # smaller moves are not worth a trip
