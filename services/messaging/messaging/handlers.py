"""Consumers: validate the event (the runner does, against the shared class), call the use case.

Messaging hears dispatch, command, timebank and checkin; it ignores the event types it
does not message about.
"""

from __future__ import annotations

from common import envelope as ce
from common import topics
from common.bus import Consumer
from common.events.checkin import CheckInSubmitted, ResidentAway, ResidentErased, ResidentRegistered
from common.events.command import (
    TicketClosed,
    TicketEscalated,
    TicketOpened,
    TicketReassigned,
    TicketReopened,
    TicketResolved,
)
from common.events.dispatch import (
    DeliveryFailed,
    DeliveryPlanned,
    RequestAssigned,
    RequestCancelled,
    RequestFulfilled,
    RequestRaised,
)
from common.events.timebank import HoursCredited
from common.outbox import UnitOfWork
from messaging.service import MessagingService

TOPICS = (
    topics.DISPATCH_EVENTS,
    topics.COMMAND_EVENTS,
    topics.TIMEBANK_EVENTS,
    topics.CHECKIN_EVENTS,
    topics.CHECKIN_RESIDENTS,
)
# Events that cause messages (domain.plan says to whom).
NOTIFYING = (RequestAssigned, DeliveryPlanned, RequestFulfilled, DeliveryFailed, RequestCancelled, HoursCredited,
             TicketResolved)  # fmt: skip


def consumer(service: MessagingService) -> Consumer:
    async def on_notifying(event, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.notify(event, envelope.id, uow)

    async def on_ticket(event, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.follow_ticket(event, uow)

    async def on_ticket_notifying(event, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.follow_ticket(event, uow)
        await service.notify(event, envelope.id, uow)

    async def on_resident(event: ResidentRegistered, _: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.learn_resident(event, uow)

    async def on_away(event: ResidentAway, _: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.note_away(event, uow)

    async def on_check_in(event: CheckInSubmitted, _: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.note_check_in(event, uow)

    async def on_request(event: RequestRaised, _: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.learn_request(event, uow)

    async def on_erased(event: ResidentErased, _: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.privacy.erase_resident(event, uow)

    handlers = {cls: on_notifying for cls in NOTIFYING}
    handlers[ResidentErased] = on_erased
    handlers.update(
        {TicketOpened: on_ticket_notifying, TicketEscalated: on_ticket_notifying, TicketReassigned: on_ticket,
         TicketClosed: on_ticket, TicketReopened: on_ticket, ResidentRegistered: on_resident, ResidentAway: on_away,
         CheckInSubmitted: on_check_in, RequestRaised: on_request}
    )  # fmt: skip
    return Consumer(
        name=service.settings.consumer_group,
        topics=TOPICS,
        handlers=handlers,
        dead_letter_topic=topics.dlq("messaging"),
        # A batch's tickets and requests are loaded together, its messages inserted together.
        prepare=service.prefetch,
        finish=service.flush,
        on_unknown="ignore",
    )
