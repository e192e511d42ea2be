"""Events published by the messaging service on `messaging.events.v1`: what people answered.

Each reply is published once, keyed on the gateway's message id (`reply_id`); the owning
service applies it with the use case its own route calls (command: feedback and
acknowledge; checkin: the check-in).
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from common.events.base import Event, register
from common.events.erasure import ResidentErasureConfirmed
from common.topics import MESSAGING_EVENTS

# The channels messaging sends on; "page" is the person's own page in the portal.
MessageChannel = Literal["sms", "voice", "chat", "page"]


class MessagingEvent(Event):
    service: ClassVar[str] = "messaging"
    topic: ClassVar[str] = MESSAGING_EVENTS
    key_field: ClassVar[str] = "ticket_id"


class Reply(MessagingEvent):
    reply_id: str  # the gateway's message id: one event per reply, however often the gateway posts it
    channel: MessageChannel
    received_at: AwareDatetime
    in_reply_to: str | None = None  # the message_id of the message answered


@register
class FeedbackReceived(Reply):
    """A resident answered a feedback invitation with 1–5: command closes (3–5) or reopens (1–2) the ticket."""

    ticket_id: str
    resident_id: str
    satisfaction: int = Field(ge=1, le=5)
    comment: str | None = None


@register
class AcknowledgementReceived(Reply):
    """A ticket's owner answered "收到" to its notice: command acknowledges the ticket for them."""

    ticket_id: str
    person_id: str


@register
class CheckInReceived(Reply):
    """A resident checked in by replying ("打卡 36.5"): checkin records it for the local date."""

    key_field: ClassVar[str] = "resident_id"

    resident_id: str
    date: date
    temperature_c: float
    symptoms: list[str] = Field(default_factory=list)


@register
class ReplyNotUnderstood(Reply):
    """A reply that no rule understands: command opens a ticket for the sender's grid worker to call back.

    `text` is the person's own words, for the grid worker who calls them; it is never in a
    ticket's title."""

    key_field: ClassVar[str] = "sender_id"

    sender_id: str  # the resident (or person) the phone number belongs to
    text: str = Field(max_length=1000)
    resident_id: str | None = None
    grid_id: str | None = None
    building_id: str | None = None


@register
class FeedbackUnanswered(MessagingEvent):
    """No answer to a feedback invitation within the wait: command opens a call task for the grid worker."""

    ticket_id: str
    resident_id: str
    invited_at: AwareDatetime
    grid_id: str | None = None
    building_id: str | None = None


@register
class ResidentErasedByMessaging(MessagingEvent, ResidentErasureConfirmed):
    """Messaging erased what it held of a resident (`ResidentErased`)."""

    key_field: ClassVar[str] = "erasure_id"


__all__ = [
    "AcknowledgementReceived",
    "CheckInReceived",
    "FeedbackReceived",
    "FeedbackUnanswered",
    "MessageChannel",
    "ReplyNotUnderstood",
    "ResidentErasedByMessaging",
]
