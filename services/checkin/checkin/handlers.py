"""Consumers: validate the event (the runner does, against the shared class), call the use case.

Check-in hears a resident who checked in by replying to a message ("打卡 36.5"), applied by
the same use case as POST /checkins, as that resident; and the services that confirm an
erasure it asked for (`ResidentErasedBy<Service>`), recorded for GET /residents/{id}/erasure.
"""

from __future__ import annotations

from checkin import domain
from checkin.service import CheckinService
from common import envelope as ce
from common import topics
from common.bus import Consumer
from common.events.command import ResidentErasedByCommand
from common.events.dispatch import ResidentErasedByDispatch
from common.events.erasure import ResidentErasureConfirmed
from common.events.messaging import CheckInReceived, ResidentErasedByMessaging
from common.events.timebank import ResidentErasedByTimebank
from common.outbox import UnitOfWork

# A reply's channel as check-in names it: a text is the resident's own; a call is a voice call.
REPLY_CHANNELS = {"sms": "self", "chat": "self", "page": "self", "voice": "voice_call"}


def consumer(service: CheckinService) -> Consumer:
    async def on_check_in_reply(event: CheckInReceived, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        # Written in the consumer's unit of work, not through the group commit: the check-in
        # and the inbox's record of the event commit together (on SQLite, whose one writer the
        # consumer's transaction holds, a second transaction could not write at all).
        resident = domain.Actor(sub=event.resident_id, role="resident")
        await service.check_in(resident, event.resident_id, event.temperature_c, list(event.symptoms),
                               channel=REPLY_CHANNELS[event.channel], day=event.date, uow=uow)  # fmt: skip

    async def on_erasure_confirmed(event: ResidentErasureConfirmed, _: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.erasure_confirmed(event.service, event, uow)

    return Consumer(
        name=service.settings.consumer_group,
        topics=topics.CONSUMES["checkin"],
        handlers={
            CheckInReceived: on_check_in_reply,
            **{
                confirmation: on_erasure_confirmed
                for confirmation in (
                    ResidentErasedByDispatch,
                    ResidentErasedByCommand,
                    ResidentErasedByMessaging,
                    ResidentErasedByTimebank,
                )
            },
        },
        dead_letter_topic=topics.dlq("checkin"),
        on_unknown="ignore",  # the others' topics carry much more than check-in applies
    )
