"""Dispatch consumers: validate (done by the runner against the shared classes), then call
the same use cases as the routes, in the runner's unit of work (inbox + effect together)."""

from __future__ import annotations

from common import topics
from common.bus import Consumer
from common.envelope import CloudEvent
from common.events.checkin import ResidentErased, ResidentRegistered
from common.events.supplies import ReservationRejected, StockReserved, StockRestored
from common.events.timebank import HoursRedeemed
from common.outbox import UnitOfWork
from dispatch.service import DispatchService


def consumer(service: DispatchService) -> Consumer:
    async def on_resident_registered(event: ResidentRegistered, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.learn_resident(event, uow)

    async def on_stock_reserved(event: StockReserved, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.stock_reserved(event, uow)

    async def on_reservation_rejected(event: ReservationRejected, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.reservation_rejected(event, uow)

    async def on_stock_restored(event: StockRestored, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.stock_restored(event, uow)

    async def on_hours_redeemed(event: HoursRedeemed, envelope: CloudEvent, uow: UnitOfWork) -> None:
        await service.hours_redeemed(event, envelope.id, uow)

    async def on_resident_erased(event: ResidentErased, _: CloudEvent, uow: UnitOfWork) -> None:
        await service.privacy.erase_resident(event, uow)

    return Consumer(
        name=service.settings.consumer_group,
        topics=[topics.CHECKIN_RESIDENTS, topics.SUPPLIES_EVENTS, topics.TIMEBANK_EVENTS],
        handlers={
            ResidentRegistered: on_resident_registered,
            ResidentErased: on_resident_erased,
            StockReserved: on_stock_reserved,
            ReservationRejected: on_reservation_rejected,
            StockRestored: on_stock_restored,
            HoursRedeemed: on_hours_redeemed,
        },
        dead_letter_topic=topics.dlq("dispatch"),
        on_unknown="ignore",  # the other events of those topics are for other services
    )
