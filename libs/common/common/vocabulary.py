"""The words every service shares, defined once: the contract's event classes, the domains
and the APIs all import them from here, so a new tag or role is added in one place.

Each vocabulary is a `Literal` (for pydantic fields and type checks) and the tuple of its
values in their meaningful order (for validation and messages).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

# A resident's tags, as check-in registers them; some raise a request's priority.
Tag = Literal["elderly", "living_alone", "chronic", "pregnant", "disabled", "mental_health"]
TAGS: tuple[Tag, ...] = get_args(Tag)
# Tags that are health data: a record carrying one of them is health-sensitive (DESIGN.md §6).
HEALTH_TAGS: frozenset[str] = frozenset({"chronic", "pregnant", "disabled", "mental_health"})

# How a check-in arrived.
Channel = Literal["self", "building_lead", "hotline", "voice_call"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

# How soon a request or a ticket needs someone: lowest first.
Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)

# A ticket's stages in the command center, in the order a problem goes through them.
Stage = Literal["discovered", "responding", "resolved", "closed", "reopened"]
STAGES: tuple[Stage, ...] = get_args(Stage)

# What a service request is for; the time bank's redemptions name the same purposes.
Category = Literal["groceries", "medicine", "medical_visit", "psychological", "tech_help", "other"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
# Requests that say something about a person's health by what they are for.
HEALTH_CATEGORIES: frozenset[str] = frozenset({"medicine", "medical_visit", "psychological"})


class Role(StrEnum):
    """Who a token says its bearer is (DESIGN.md's roles)."""

    resident = "resident"
    building_lead = "building_lead"
    grid_worker = "grid_worker"
    volunteer = "volunteer"
    supplies_officer = "supplies_officer"
    dispatcher = "dispatcher"
    command = "command"
    partner = "partner"
    merchant = "merchant"
    admin = "admin"


# Roles that see the whole community (no grid, building or department scope).
STAFF_ROLES = frozenset({Role.command, Role.admin})
