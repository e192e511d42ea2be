"""Consumers: validate the event (the runner does, against the shared class), call the use case.

Unknown event types on these topics are ignored (`on_unknown="ignore"`); malformed ones are
dead-lettered to command.dlq.v1 by the runner.
"""

from __future__ import annotations

from command import domain
from command.service import CommandService
from common import envelope as ce
from common import topics
from common.bus import Consumer
from common.events.checkin import (
    CheckInMissed,
    CheckInSubmitted,
    HealthAnomalyReported,
    ResidentErased,
    ResidentRegistered,
    SamplingLagging,
)
from common.events.dispatch import DemandSurge, RequestOverdue, RequestRaised
from common.events.messaging import AcknowledgementReceived, FeedbackReceived, FeedbackUnanswered, ReplyNotUnderstood
from common.events.supplies import ReservationRejected, StockLow, StockOut
from common.outbox import UnitOfWork

# Events that are problems: each becomes (or joins) a ticket by the rules.
PROBLEMS = (CheckInMissed, HealthAnomalyReported, SamplingLagging, StockLow, StockOut, ReservationRejected,
            RequestOverdue, DemandSurge, ReplyNotUnderstood, FeedbackUnanswered)  # fmt: skip
TOPICS = (topics.CHECKIN_EVENTS, topics.CHECKIN_RESIDENTS, topics.SUPPLIES_EVENTS, topics.DISPATCH_EVENTS,
          topics.MESSAGING_EVENTS)  # fmt: skip


def consumer(service: CommandService) -> Consumer:
    async def on_problem(event, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.take_report(domain.report_from_event(event), envelope, uow=uow)

    async def on_missed(event: CheckInMissed, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.record_checkin_fact(event.resident_id, event.date, "missed", uow=uow)
        await on_problem(event, envelope, uow)

    async def on_registered(event: ResidentRegistered, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.learn_resident(
            event.resident_id, event.grid_id, event.building_id, event.lat, event.lon, envelope.time, uow=uow
        )

    async def on_checked_in(event: CheckInSubmitted, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.record_checkin_fact(event.resident_id, event.date, "checked_in", uow=uow)

    async def on_request(event: RequestRaised, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.record_signal("request", event.resident_id, None, None, uow=uow)

    # Replies heard by messaging: the same use cases as POST /tickets/{id}/feedback and
    # /acknowledge, as the resident or the owner who replied (messaging checked who that is).
    async def on_feedback(event: FeedbackReceived, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        resident = domain.Actor(sub=event.resident_id, role="resident")
        await service.feedback(resident, event.ticket_id, event.satisfaction, event.comment, uow=uow)

    async def on_acknowledgement(event: AcknowledgementReceived, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        owner = domain.Actor(
            sub=event.person_id, role="grid_worker"
        )  # admitted as the ticket's owner, whatever their grids
        await service.acknowledge(owner, event.ticket_id, note=f"replied 收到 by {event.channel}", uow=uow)

    async def on_erased(event: ResidentErased, envelope: ce.CloudEvent, uow: UnitOfWork) -> None:
        await service.privacy.erase_resident(event, uow)

    handlers = {cls: on_problem for cls in PROBLEMS}
    handlers[ResidentErased] = on_erased
    handlers.update(
        {CheckInMissed: on_missed, ResidentRegistered: on_registered, CheckInSubmitted: on_checked_in,
         RequestRaised: on_request, FeedbackReceived: on_feedback, AcknowledgementReceived: on_acknowledgement}
    )  # fmt: skip
    return Consumer(
        name=service.settings.consumer_group,
        topics=service.settings.consumer_topics or TOPICS,
        handlers=handlers,
        dead_letter_topic=topics.dlq("command"),
        # A sweep sends tens of thousands of CheckInMissed at once: the batch's store loads the
        # open tickets and places it concerns in one query each, and writes its new rows together.
        prepare=service.stores.begin,
        finish=service.stores.flush,
        on_unknown="ignore",
    )
