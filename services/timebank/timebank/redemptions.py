"""Spending hours on services: a redemption raises a request; a cancelled one is refunded."""

from __future__ import annotations

import logging

from sqlalchemy import select

from common.errors import Conflict, Invalid, NotFound
from common.events.dispatch import RequestCancelled
from common.events.timebank import HoursRedeemed, HoursRefunded
from common.outbox import UnitOfWork
from timebank import domain
from timebank.domain import Actor
from timebank.ledger import SYSTEM_ACTOR, Ledger, new_id
from timebank.models import FamilyLink, Redemption

log = logging.getLogger(__name__)


class Redemptions(Ledger):
    async def redeem(
        self,
        actor: Actor,
        member_id: str,
        hours: float,
        purpose: str,
        details: str | None = None,
        for_member_id: str | None = None,
        redemption_id: str | None = None,
        *,
        uow: UnitOfWork | None = None,
    ) -> tuple[Redemption, bool]:
        """Spend hours on a service for the member or a family member: HoursRedeemed with a
        pre-generated request_id, which dispatch raises. Returns (redemption, created);
        repeating a call with the same redemption_id returns the first result."""
        domain.ensure_self_or_staff(actor, member_id, "spend this member's hours")
        units = domain.to_units(hours, "hours")
        if units > domain.to_units(self.settings.max_redemption_hours, "hours"):
            raise Invalid(f"at most {self.settings.max_redemption_hours} hours can be spent at once, not {hours}")
        domain.check_purpose(purpose)
        async with self.runtime.work(uow) as uow:
            if redemption_id:
                existing = await uow.session.get(Redemption, redemption_id)
                if existing is not None:
                    if (existing.member_id, existing.hours, existing.purpose) != (member_id, units, purpose):
                        raise Conflict(f"redemption {redemption_id} exists with other terms")
                    return existing, False
            await self._member(uow, member_id)
            family = (
                (await uow.session.execute(select(FamilyLink.relative_id).where(FamilyLink.member_id == member_id)))
                .scalars()
                .all()
            )
            beneficiary = domain.beneficiary(member_id, for_member_id, family)
            redemption_id = redemption_id or new_id("RD")
            request_id = new_id("TB")
            reason = f"{purpose} for {beneficiary}" + (f": {details}" if details else "")
            posted = await self._post(
                uow,
                domain.move(
                    domain.REDEEM,
                    "hours",
                    domain.member_account(member_id, "hours"),
                    domain.pool_account("hours"),
                    units,
                ),
                reason=reason,
                actor=actor.sub,
                request_id=request_id,
                redemption_id=redemption_id,
                idempotency_key=f"redeem:{redemption_id}",
            )
            now = self.clock.now()
            redemption = Redemption(
                redemption_id=redemption_id,
                member_id=member_id,
                for_member_id=beneficiary,
                hours=units,
                purpose=purpose,
                details=details,
                request_id=request_id,
                transfer_id=posted.transfer.transfer_id,
                created_by=actor.sub,
                created_at=now,
                updated_at=now,
            )
            uow.session.add(redemption)
            uow.emit(
                HoursRedeemed(
                    member_id=member_id,
                    hours=domain.from_units(units, "hours"),
                    reason=reason,
                    request_id=request_id,
                    redemption_id=redemption_id,
                    for_member_id=beneficiary,
                    purpose=purpose,
                    category=purpose,
                    details=details,
                    transfer_id=posted.transfer.transfer_id,
                )
            )
        return redemption, True

    async def redemption(self, redemption_id: str) -> Redemption:
        async with self.runtime.db.session() as session:
            redemption = await session.get(Redemption, redemption_id)
        if redemption is None:
            raise NotFound(f"no redemption {redemption_id!r}")
        return redemption

    async def refund_cancelled(self, event: RequestCancelled, uow: UnitOfWork | None = None) -> HoursRefunded | None:
        """A redemption's request that will not be served gives the hours back by a
        compensating transfer (pool -> member), once. Other cancellations are not ours."""
        async with self.runtime.work(uow) as uow:
            query = uow.for_update(select(Redemption))
            if event.redemption_id:
                query = query.where(Redemption.redemption_id == event.redemption_id)
            else:
                query = query.where(Redemption.request_id == event.request_id)
            redemption = (await uow.session.execute(query)).scalar_one_or_none()
            if redemption is None:
                if event.redemption_id:
                    raise NotFound(f"no redemption {event.redemption_id!r} to refund for request {event.request_id}")
                return None
            if redemption.status != "requested":
                log.info("redemption %s is %s: nothing to refund", redemption.redemption_id, redemption.status)
                return None
            reason = f"refund: request {event.request_id} cancelled ({event.reason})"
            posted = await self._post(
                uow,
                domain.move(
                    domain.REFUND,
                    "hours",
                    domain.pool_account("hours"),
                    domain.member_account(redemption.member_id, "hours"),
                    redemption.hours,
                ),
                reason=reason,
                actor=SYSTEM_ACTOR,
                request_id=redemption.request_id,
                redemption_id=redemption.redemption_id,
                idempotency_key=f"refund:{redemption.redemption_id}",
            )
            redemption.status = "refunded"
            redemption.status_reason = event.reason[:300]
            redemption.refund_transfer_id = posted.transfer.transfer_id
            redemption.updated_at = self.clock.now()
            refunded = HoursRefunded(
                member_id=redemption.member_id,
                hours=domain.from_units(redemption.hours, "hours"),
                reason=reason,
                request_id=redemption.request_id,
                redemption_id=redemption.redemption_id,
                transfer_id=posted.transfer.transfer_id,
            )
            uow.emit(refunded)
            return refunded


def redemption_view(redemption: Redemption) -> dict:
    return {
        "redemption_id": redemption.redemption_id,
        "member_id": redemption.member_id,
        "for_member_id": redemption.for_member_id,
        "hours": domain.from_units(redemption.hours, "hours"),
        "purpose": redemption.purpose,
        "details": redemption.details,
        "request_id": redemption.request_id,
        "status": redemption.status,
        "status_reason": redemption.status_reason,
        "transfer_id": redemption.transfer_id,
        "refund_transfer_id": redemption.refund_transfer_id,
        "created_at": redemption.created_at,
        "updated_at": redemption.updated_at,
    }
