"""Time-bank settings: environment variables prefixed TIMEBANK_ (e.g. TIMEBANK_CREDIT_ROUNDING=up)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings, env_files


class TimebankSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TIMEBANK_", env_file=env_files(), extra="ignore")

    service: str = "timebank"
    port: int = 8004
    # Earning: service minutes are rounded to a step, then turned into hours.
    credit_step_minutes: int = Field(15, ge=1, le=60)
    credit_rounding: Literal["up", "down", "nearest"] = "nearest"
    credit_max_hours: float = Field(8.0, gt=0)  # one request never earns more than this
    # A fulfilment reporting more service minutes than this (per category where set, e.g.
    # TIMEBANK_CREDIT_REVIEW_MINUTES_BY_CATEGORY='{"counselling": 240}') waits for staff approval
    credit_review_minutes: int = Field(180, ge=0, le=1440)
    credit_review_minutes_by_category: dict[str, int] = Field(default_factory=dict)
    # Spending: how far below zero a member's hours may go (0: never).
    member_overdraft_hours: float = Field(0.0, ge=0)
    max_redemption_hours: float = Field(40.0, gt=0)
    # Points (积分): a base per activity plus points per hour earned.
    points_per_hour: int = Field(10, ge=0)
    points_per_activity: dict[str, int] = Field(
        default_factory=lambda: {
            "request_fulfilled": 5,
            "publicity": 3,
            "sampling_site": 5,
            "patrol": 3,
            "other": 0,
        }
    )
    leaderboard_size: int = Field(20, ge=1, le=500)
