"""Supplies consumers: dispatch's requests reserve, release and issue stock. Each handler
is thin and calls the same use case as the routes, in the consumer's unit of work (so the
inbox record, the effect and the events it causes commit together)."""

from __future__ import annotations

from common import topics
from common.bus import Consumer
from common.envelope import CloudEvent
from common.events.dispatch import RequestCancelled, RequestFulfilled, RequestRaised
from common.outbox import UnitOfWork
from supplies.service import SuppliesService

SERVICE = "supplies"


def consumer(service: SuppliesService) -> Consumer:
    async def on_request_raised(event: RequestRaised, envelope: CloudEvent, uow: UnitOfWork) -> None:
        if not event.items:
            return  # nothing to reserve: a doctor's visit, help with a phone
        by = event.raised_by or event.resident_id
        retry = (event.reservation_attempt or 1) > 1  # dispatch asks again when stock comes back
        await service.reserve(
            event.request_id, [(line.item_id, line.quantity) for line in event.items], by, retry=retry, uow=uow
        )

    async def on_request_cancelled(event: RequestCancelled, envelope: CloudEvent, uow: UnitOfWork) -> None:
        await service.release(event.request_id, f"request cancelled: {event.reason}", uow=uow)

    async def on_request_fulfilled(event: RequestFulfilled, envelope: CloudEvent, uow: UnitOfWork) -> None:
        await service.fulfil(event.request_id, event.volunteer_id, uow=uow)

    return Consumer(
        name=service.settings.consumer_group,
        topics=[topics.DISPATCH_EVENTS],
        handlers={
            RequestRaised: on_request_raised,
            RequestCancelled: on_request_cancelled,
            RequestFulfilled: on_request_fulfilled,
        },
        dead_letter_topic=topics.dlq(SERVICE),
        on_unknown="ignore",  # assignments, runs, surges: not ours to apply
    )
