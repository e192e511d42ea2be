"""Consumers: validate the event (done by common.bus against the shared class), call the
same use case as the routes, in the transaction that records the event in the inbox."""

from __future__ import annotations

from common import topics
from common.bus import Consumer
from common.envelope import CloudEvent
from common.events.checkin import ResidentErased
from common.events.dispatch import RequestCancelled, RequestFulfilled, RequestRaised
from common.outbox import UnitOfWork
from common.topics import CHECKIN_RESIDENTS, DISPATCH_EVENTS
from timebank.service import TimebankService


def consumer(service: TimebankService) -> Consumer:
    async def on_request_fulfilled(event: RequestFulfilled, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.credit_fulfilled(event, uow)

    async def on_request_raised(event: RequestRaised, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.request_raised(event, uow)

    async def on_request_cancelled(event: RequestCancelled, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.refund_cancelled(event, uow)

    async def on_resident_erased(event: ResidentErased, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.privacy.erase_resident(event, uow)

    return Consumer(
        name=service.settings.consumer_group,
        topics=[DISPATCH_EVENTS, CHECKIN_RESIDENTS],
        handlers={
            RequestRaised: on_request_raised,
            RequestFulfilled: on_request_fulfilled,
            RequestCancelled: on_request_cancelled,
            ResidentErased: on_resident_erased,
        },
        dead_letter_topic=topics.dlq("timebank"),
        on_unknown="ignore",  # dispatch and the registry publish much more than the time bank needs
    )
