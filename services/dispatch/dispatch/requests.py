"""Requests: raised by people, by the time bank and by the saga with supplies; fulfilled,
failed or cancelled by those who serve them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from common.errors import Invalid, NotFound
from common.events.checkin import ResidentRegistered
from common.events.dispatch import (
    DeliveryFailed,
    ItemLine,
    RequestAssigned,
    RequestCancelled,
    RequestFulfilled,
    RequestRaised,
)
from common.events.supplies import ReservationRejected, StockReserved, StockRestored
from common.events.timebank import HoursRedeemed
from common.outbox import UnitOfWork
from dispatch import domain
from dispatch.matching import Matching
from dispatch.models import KnownResident, RequestHistory, ServiceRequest, Volunteer

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("0d6b2f4e-5c1a-4f7e-8b3d-9a2c1e4f6b8d")  # request ids derived from what caused them


class Requests(Matching):
    async def learn_resident(self, event: ResidentRegistered, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            resident = await uow.session.get(KnownResident, event.resident_id)
            if resident is None:
                resident = KnownResident(
                    resident_id=event.resident_id,
                    learnt_at=self.clock.now(),
                    community_id=event.community_id,
                    grid_id=event.grid_id,
                    building_id=event.building_id,
                )
                uow.session.add(resident)
            resident.community_id = event.community_id
            resident.grid_id = event.grid_id
            resident.building_id = event.building_id
            resident.tags = list(event.tags)
            for name in ("name", "phone", "unit", "room", "lat", "lon"):
                value = getattr(event, name)
                if value is not None:
                    setattr(resident, name, value)
            resident.learnt_at = self.clock.now()

    async def raise_request(
        self,
        actor: domain.Actor,
        resident_id: str,
        category: str,
        details: str | None,
        items: Sequence[ItemLine] = (),
        window: domain.Window | None = None,
        *,
        uow: UnitOfWork | None = None,
    ) -> ServiceRequest:
        domain.check_category(category)
        now = self.clock.now()
        window = domain.check_window(window, now)
        async with self.runtime.work(uow) as uow:
            resident = await self._resident(uow, resident_id)
            source = domain.source_for(actor, resident_id, resident.grid_id, resident.building_id)
            request = await self._raise(
                uow,
                resident,
                category,
                details,
                items,
                window,
                source=source,
                raised_by=actor.sub,
                request_id="RQ-" + uuid.uuid4().hex[:16],
            )
        return request

    async def _raise(
        self,
        uow: UnitOfWork,
        resident: KnownResident,
        category: str,
        details: str | None,
        items: Sequence[ItemLine],
        window: domain.Window | None,
        *,
        source: str,
        raised_by: str,
        request_id: str,
        priority: str | None = None,
        due: datetime | None = None,
        redemption_id: str | None = None,
        recurrence_id: str | None = None,
    ) -> ServiceRequest:
        now = self.clock.now()
        priority = priority or domain.priority_for(category, resident.tags)
        lines = merge_lines(items)
        request = ServiceRequest(
            request_id=request_id,
            resident_id=resident.resident_id,
            category=category,
            details=details,
            items=[line.model_dump() for line in lines],
            priority=priority,
            due_by=due or domain.due_by(priority, now, window),
            window_start=window.start if window else None,
            window_end=window.end if window else None,
            status="awaiting_stock" if lines else "pending",
            grid_id=resident.grid_id,
            building_id=resident.building_id,
            lat=resident.lat,
            lon=resident.lon,
            source=source,
            raised_by=raised_by,
            redemption_id=redemption_id,
            recurrence_id=recurrence_id,
            refill_due=due if recurrence_id else None,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(request)
        self._history(uow, request, raised_by, "raised")
        uow.emit(_raised(request))
        if not lines:
            await self._assign(uow, request)
        return request

    async def request(self, request_id: str) -> tuple[ServiceRequest, list[RequestHistory]]:
        async with self.runtime.db.session() as session:
            request = await session.get(ServiceRequest, request_id)
            if request is None:
                raise NotFound(f"no request {request_id!r}")
            history = (
                (
                    await session.execute(
                        select(RequestHistory)
                        .where(RequestHistory.request_id == request_id)
                        .order_by(RequestHistory.history_id)
                    )
                )
                .scalars()
                .all()
            )
        return request, list(history)

    async def requests(
        self,
        *,
        status: str | None = None,
        volunteer_id: str | None = None,
        resident_id: str | None = None,
        grid_ids: Sequence[str] | None = None,
        limit: int = 200,
        offset: int = 0,
    ) -> list[ServiceRequest]:
        query = (
            select(ServiceRequest)
            .order_by(ServiceRequest.due_by, ServiceRequest.request_id)
            .limit(limit)
            .offset(offset)
        )
        if status:
            query = query.where(ServiceRequest.status == status)
        if volunteer_id:
            query = query.where(ServiceRequest.volunteer_id == volunteer_id)
        if resident_id:
            query = query.where(ServiceRequest.resident_id == resident_id)
        if grid_ids is not None:
            query = query.where(ServiceRequest.grid_id.in_(grid_ids))
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars().all())

    async def stock_reserved(self, event: StockReserved, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            request = await uow.session.get(ServiceRequest, event.request_id)
            if request is None or request.status not in ("awaiting_stock", "waiting_for_stock"):
                log.info("StockReserved for %s ignored: %s", event.request_id, request.status if request else "unknown")
                return
            request.status = "pending"
            request.shortages = []
            self._history(uow, request, "supplies", "stock reserved")
            await self._assign(uow, request)

    async def reservation_rejected(self, event: ReservationRejected, uow: UnitOfWork | None = None) -> None:
        async with self.runtime.work(uow) as uow:
            request = await uow.session.get(ServiceRequest, event.request_id)
            if request is None or request.status != "awaiting_stock":
                log.info("ReservationRejected for %s ignored", event.request_id)
                return
            request.status = "waiting_for_stock"
            request.shortages = [s.model_dump() for s in event.shortages]
            short = ", ".join(f"{s.item_id} ({s.available:g} of {s.requested:g})" for s in event.shortages)
            self._history(uow, request, "supplies", f"waiting for stock: {short}")

    async def stock_restored(self, event: StockRestored, uow: UnitOfWork | None = None) -> int:
        """Stock is back: ask supplies again for the requests that were short of this item."""
        async with self.runtime.work(uow) as uow:
            waiting = (
                (
                    await uow.session.execute(
                        select(ServiceRequest)
                        .where(ServiceRequest.status == "waiting_for_stock")
                        .order_by(ServiceRequest.due_by)
                    )
                )
                .scalars()
                .all()
            )
            retried = 0
            for request in waiting:
                if not any(s.get("item_id") == event.item_id for s in request.shortages or request.items):
                    continue
                request.status = "awaiting_stock"
                request.reservation_attempt += 1
                self._history(uow, request, "supplies", f"{event.item_id} back in stock: reserving again")
                uow.emit(_raised(request))
                retried += 1
            return retried

    async def hours_redeemed(self, event: HoursRedeemed, envelope_id: str, uow: UnitOfWork | None = None) -> None:
        """A member spent hours on a service: raise it for them, once per redemption; if it
        cannot be served, cancel it with the redemption id so the time bank refunds."""
        request_id = event.request_id or "RQ-" + uuid.uuid5(NAMESPACE, event.redemption_id or envelope_id).hex[:16]
        async with self.runtime.work(uow) as uow:
            if await uow.session.get(ServiceRequest, request_id) is not None:
                return
            resident_id = event.for_member_id or event.member_id
            resident = await uow.session.get(KnownResident, resident_id)
            purpose = (event.purpose or "").strip().lower()
            category = purpose if purpose in domain.CATEGORIES else self.settings.timebank_default_category
            if resident is None:
                uow.emit(
                    RequestCancelled(
                        request_id=request_id,
                        reason=f"{resident_id} is not a registered resident: the service cannot be delivered",
                        redemption_id=event.redemption_id,
                    )
                )
                return
            details = event.details or event.purpose or event.reason
            await self._raise(
                uow,
                resident,
                category,
                details,
                (),
                None,
                source="timebank",
                raised_by=event.member_id,
                request_id=request_id,
                redemption_id=event.redemption_id,
            )

    async def fulfil(
        self,
        actor: domain.Actor,
        request_id: str,
        volunteer_id: str,
        service_minutes: int,
        note: str | None,
        *,
        uow: UnitOfWork | None = None,
    ) -> ServiceRequest:
        async with self.runtime.work(uow) as uow:
            request = await self._get(uow, request_id)
            domain.check_fulfilment(request.status, request.volunteer_id, volunteer_id, actor, service_minutes)
            request.status = "fulfilled"
            request.service_minutes = service_minutes
            request.note = note
            request.fulfilled_at = self.clock.now()
            self._history(uow, request, actor.sub, note or "fulfilled")
            uow.emit(
                RequestFulfilled(
                    request_id=request_id,
                    volunteer_id=volunteer_id,
                    service_minutes=service_minutes,
                    resident_id=request.resident_id,
                    category=request.category,
                    note=note,
                )
            )
        return request

    async def fail(
        self, actor: domain.Actor, request_id: str, volunteer_id: str, reason: str, *, uow: UnitOfWork | None = None
    ) -> ServiceRequest:
        """A delivery that could not be made: the reason is kept, the request goes back in the queue."""
        if not reason.strip():
            raise Invalid("say why the delivery failed (reason)")
        async with self.runtime.work(uow) as uow:
            request = await self._get(uow, request_id)
            domain.check_fulfilment(request.status, request.volunteer_id, volunteer_id, actor, 0)
            request.failed_attempts += 1
            request.status, request.volunteer_id, request.run_id = "pending", None, None
            self._history(uow, request, actor.sub, f"delivery failed: {reason}")
            uow.emit(
                DeliveryFailed(
                    request_id=request_id, volunteer_id=volunteer_id, reason=reason, attempts=request.failed_attempts
                )
            )
            await self._assign(uow, request)
        return request

    async def assign_by_hand(
        self,
        actor: domain.Actor,
        request_id: str,
        volunteer_id: str,
        note: str | None,
        *,
        uow: UnitOfWork | None = None,
    ) -> ServiceRequest:
        """A dispatcher gives a request to the volunteer they choose (one planning could not
        place, or one they know better): `RequestAssigned`, with the previous volunteer."""
        async with self.runtime.work(uow) as uow:
            request = await self._get(uow, request_id)
            volunteer = await uow.session.get(Volunteer, volunteer_id)
            if volunteer is None:
                raise NotFound(f"no volunteer {volunteer_id!r}")
            domain.check_hand_assignment(request.status, request.run_id, actor, volunteer.active)
            previous = request.volunteer_id
            if previous != volunteer_id:
                request.assignment_no += 1
            request.volunteer_id, request.status = volunteer_id, "assigned"
            self._history(
                uow, request, actor.sub, f"assigned by hand to {volunteer.name}" + (f": {note}" if note else "")
            )
            uow.emit(
                RequestAssigned(
                    request_id=request_id,
                    volunteer_id=volunteer_id,
                    due_by=request.due_by,
                    previous_volunteer_id=previous,
                    category=request.category,
                )
            )
        return request

    async def cancel(
        self, actor: domain.Actor, request_id: str, reason: str, *, uow: UnitOfWork | None = None
    ) -> ServiceRequest:
        async with self.runtime.work(uow) as uow:
            request = await self._get(uow, request_id)
            domain.check_cancellation(request.status, request.resident_id, actor)
            request.status, request.run_id = "cancelled", None
            self._history(uow, request, actor.sub, f"cancelled: {reason}")
            uow.emit(RequestCancelled(request_id=request_id, reason=reason, redemption_id=request.redemption_id))
        return request


def merge_lines(items: Sequence[ItemLine]) -> list[ItemLine]:
    merged: dict[str, float] = {}
    for line in items:
        merged[line.item_id] = merged.get(line.item_id, 0) + line.quantity
    return [ItemLine(item_id=k, quantity=v) for k, v in merged.items()]


def _raised(request: ServiceRequest) -> RequestRaised:
    return RequestRaised(
        request_id=request.request_id,
        resident_id=request.resident_id,
        category=request.category,
        priority=request.priority,
        due_by=request.due_by,
        items=[ItemLine(**i) for i in request.items],
        details=request.details,
        grid_id=request.grid_id,
        building_id=request.building_id,
        raised_by=request.raised_by,
        source=request.source,
        redemption_id=request.redemption_id,
        window_start=request.window_start,
        window_end=request.window_end,
        reservation_attempt=request.reservation_attempt if request.reservation_attempt > 1 else None,
        recurrence_id=request.recurrence_id,
    )
