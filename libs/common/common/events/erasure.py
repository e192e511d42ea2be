"""What a service confirms once it has erased a resident (`ResidentErased`): one class per
confirming service, each on that service's own topic (one producer per topic), keyed by
the erasure, so the check-in service (which asked) can list who has confirmed.

A confirmation names the erasure, never the person, and counts what was removed or
anonymised per kind of record: figures without personal data.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from common.events.base import Event


class ResidentErasureConfirmed(Event):
    """Not an event itself: the fields every service's confirmation shares."""

    key_field: ClassVar[str] = "erasure_id"

    erasure_id: str = Field(max_length=40)
    erased_at: AwareDatetime
    # Per kind of record ("requests", "tickets", ...): how many rows were removed or anonymised.
    records: dict[str, int] = Field(default_factory=dict, max_length=20)
