"""Posting to the ledger: accounts locked in one order, transfers that balance, and the hours
and points members earn. Every time-bank use case stands on this.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update

from common.clock import local_date
from common.db import insert_ignore
from common.errors import Conflict, Invalid, NotFound
from common.events.dispatch import RequestFulfilled, RequestRaised
from common.events.timebank import HoursCredited
from common.outbox import UnitOfWork
from common.runtime import Runtime
from timebank import domain
from timebank.domain import Actor
from timebank.models import Account, LedgerEntry, Member, RaisedRequest, Redemption, Transfer
from timebank.settings import TimebankSettings

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "dispatch"  # movements caused by dispatch's events


@dataclass(frozen=True)
class Posted:
    """A transfer written to the ledger, with the balances it left."""

    transfer: Transfer
    balances: dict[str, int]


def new_id(prefix: str) -> str:
    """An id for a member, merchant, offer, coupon or redemption: its prefix and 16 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class Ledger:
    """The shared inside of the time-bank use cases: accounts, posting, earning."""

    def __init__(self, runtime: Runtime, settings: TimebankSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz
        self.member_overdraft = (
            domain.to_units(settings.member_overdraft_hours, "hours") if settings.member_overdraft_hours else 0
        )

    @property
    def clock(self):
        return self.runtime.clock

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    async def _accounts(self, uow: UnitOfWork, account_ids: Sequence[str]) -> dict[str, Account]:
        """Lock the accounts in one order (no deadlocks between transfers that touch the
        same accounts) for the rest of the transaction, opening any that do not exist yet."""
        wanted = sorted(set(account_ids))
        locked = await self._lock(uow, wanted)
        missing = [a for a in wanted if a not in locked]
        if missing:
            now = self.clock.now()
            for account_id in missing:
                spec = domain.account_spec(account_id, self.member_overdraft)
                await insert_ignore(
                    uow.session,
                    Account,
                    {
                        "account_id": spec.account_id,
                        "unit": spec.unit,
                        "kind": spec.kind,
                        "owner_id": spec.owner_id,
                        "balance": 0,
                        "overdraft": spec.overdraft,
                        "opened_at": now,
                    },
                    ["account_id"],
                )
            locked = await self._lock(uow, wanted)
        return locked

    async def _lock(self, uow: UnitOfWork, account_ids: list[str]) -> dict[str, Account]:
        await uow.lock_for_write()  # SQLite: the balances read next cannot go stale (lost updates otherwise)
        rows = (
            await uow.session.execute(
                uow.for_update(
                    select(Account)
                    .where(Account.account_id.in_(account_ids))
                    .order_by(Account.account_id)
                    .execution_options(populate_existing=True)
                )
            )
        ).scalars()
        return {row.account_id: row for row in rows}

    async def _post(
        self,
        uow: UnitOfWork,
        plan: domain.Transfer,
        *,
        reason: str,
        actor: str,
        activity: str | None = None,
        request_id: str | None = None,
        redemption_id: str | None = None,
        coupon_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Posted:
        now = self.clock.now()
        accounts = await self._accounts(uow, [leg.account_id for leg in plan.legs])
        balances: dict[str, int] = {}
        for leg in plan.legs:
            account = accounts[leg.account_id]
            domain.check_funds(
                domain.AccountSpec(account.account_id, account.unit, account.kind, account.owner_id, account.overdraft),
                account.balance,
                leg.amount,
            )
            account.balance += leg.amount
            balances[leg.account_id] = account.balance
        transfer = Transfer(
            transfer_id=str(uuid.uuid4()),
            kind=plan.kind,
            unit=plan.unit,
            amount=plan.amount,
            reason=reason[:300],
            activity=activity,
            actor=actor,
            request_id=request_id,
            redemption_id=redemption_id,
            coupon_id=coupon_id,
            source_event_id=uow.cause.id if uow.cause else None,
            idempotency_key=idempotency_key,
            created_at=now,
        )
        uow.session.add(transfer)
        await uow.session.flush()
        for leg in plan.legs:
            uow.session.add(
                LedgerEntry(
                    transfer_id=transfer.transfer_id,
                    account_id=leg.account_id,
                    amount=leg.amount,
                    balance_after=balances[leg.account_id],
                    created_at=now,
                )
            )
        await uow.session.flush()
        return Posted(transfer, balances)

    async def _already(self, uow: UnitOfWork, idempotency_key: str) -> Transfer | None:
        return (
            await uow.session.execute(select(Transfer).where(Transfer.idempotency_key == idempotency_key))
        ).scalar_one_or_none()

    async def _member(self, uow: UnitOfWork, member_id: str, what: str = "member") -> Member:
        member = await uow.session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no {what} {member_id!r}: register them with POST /members first")
        return member

    async def _earn(
        self,
        uow: UnitOfWork,
        member_id: str,
        units: int,
        *,
        activity: str,
        reason: str,
        actor: str,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> HoursCredited:
        points = domain.points_for(
            activity, units, per_hour=self.settings.points_per_hour, per_activity=self.settings.points_per_activity
        )
        posted = await self._post(
            uow,
            domain.move(
                domain.EARN, "hours", domain.pool_account("hours"), domain.member_account(member_id, "hours"), units
            ),
            reason=reason,
            actor=actor,
            activity=activity,
            request_id=request_id,
            idempotency_key=idempotency_key,
        )
        if points > 0:
            await self._post(
                uow,
                domain.move(
                    domain.AWARD,
                    "points",
                    domain.pool_account("points"),
                    domain.member_account(member_id, "points"),
                    points,
                ),
                reason=f"{activity}: {reason}",
                actor=actor,
                activity=activity,
                request_id=request_id,
            )
        event = HoursCredited(
            member_id=member_id,
            hours=domain.from_units(units, "hours"),
            reason=reason,
            request_id=request_id,
            transfer_id=posted.transfer.transfer_id,
            activity=activity,
            points=points,
            balance_hours=domain.from_units(posted.balances[domain.member_account(member_id, "hours")], "hours"),
        )
        uow.emit(event)
        return event

    async def credit(
        self, actor: Actor, member_id: str, hours: float, activity: str, reason: str, *, uow: UnitOfWork | None = None
    ) -> HoursCredited:
        """Staff credit other volunteering (publicity shifts, sampling-site help) with a reason."""
        units = domain.to_units(hours, "hours")
        if units > domain.to_units(self.settings.credit_max_hours, "hours"):
            raise Invalid(f"at most {self.settings.credit_max_hours} hours can be credited at once, not {hours}")
        if not reason.strip():
            raise Invalid("give a reason: credits are attributed and audited")
        if activity == "request_fulfilled":
            raise Invalid("request_fulfilled hours are credited by dispatch's RequestFulfilled, not by hand")
        async with self.runtime.work(uow) as uow:
            await self._member(uow, member_id)
            return await self._earn(uow, member_id, units, activity=activity, reason=reason.strip(), actor=actor.sub)

    async def credit_fulfilled(self, event: RequestFulfilled, uow: UnitOfWork | None = None) -> HoursCredited | None:
        """A fulfilled request credits its volunteer once, whatever the delivery; the
        volunteer's account opens on first credit."""
        async with self.runtime.work(uow) as uow:
            redemption = (
                await uow.session.execute(select(Redemption).where(Redemption.request_id == event.request_id))
            ).scalar_one_or_none()
            if redemption is not None and redemption.status == "requested":
                redemption.status = "fulfilled"
                redemption.updated_at = self.clock.now()
            if await self._already(uow, f"fulfilled:{event.request_id}") is not None:
                log.info("request %s was already credited", event.request_id)
                return None
            raised = await uow.session.get(RaisedRequest, event.request_id)
            if raised is None:
                raise Invalid(f"request {event.request_id} was never raised: its fulfilment earns nothing")
            if raised.status != "raised":  # awaiting approval, or credited
                return None
            category = event.category or raised.category
            raised.volunteer_id, raised.service_minutes = event.volunteer_id, event.service_minutes
            if domain.needs_review(
                event.service_minutes,
                category,
                self.settings.credit_review_minutes,
                self.settings.credit_review_minutes_by_category,
            ):
                raised.status = "awaiting_approval"
                log.info("request %s: %d service minutes await staff approval", event.request_id, event.service_minutes)
                return None
            raised.status = "credited"
            return await self._credit_fulfilment(
                uow, event.request_id, event.volunteer_id, event.service_minutes, category
            )

    async def request_raised(self, event: RequestRaised, uow: UnitOfWork | None = None) -> None:
        """Remember a raised request: only these earn hours when fulfilled."""
        async with self.runtime.work(uow) as uow:
            values = {
                "request_id": event.request_id,
                "category": event.category,
                "raised_at": self.clock.now(),
                "status": "raised",
            }
            await insert_ignore(uow.session, RaisedRequest, values, ["request_id"])

    async def approve_fulfilment(
        self, actor: Actor, request_id: str, service_minutes: int | None = None, uow: UnitOfWork | None = None
    ) -> HoursCredited | None:
        """Staff approve the minutes of a fulfilment that waited (as reported, or fewer), and
        the volunteer is credited once."""
        async with self.runtime.work(uow) as uow:
            claimed = (
                await uow.session.execute(
                    update(RaisedRequest)
                    .where(RaisedRequest.request_id == request_id, RaisedRequest.status == "awaiting_approval")
                    .values(status="credited", reviewed_by=actor.sub)
                    .returning(RaisedRequest.volunteer_id, RaisedRequest.service_minutes, RaisedRequest.category)
                )
            ).one_or_none()
            if claimed is None:
                if await uow.session.get(RaisedRequest, request_id) is None:
                    raise NotFound(f"no fulfilment of request {request_id!r}")
                raise Conflict(f"request {request_id} is not awaiting approval")
            volunteer_id, reported, category = claimed
            minutes = reported if service_minutes is None else service_minutes
            if minutes > reported:
                raise Invalid(f"approve at most the {reported} minutes reported, not {minutes}")
            return await self._credit_fulfilment(uow, request_id, volunteer_id, minutes, category)

    async def fulfilments_awaiting_approval(self, limit: int, offset: int) -> list[dict]:
        async with self.runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(RaisedRequest)
                    .where(RaisedRequest.status == "awaiting_approval")
                    .order_by(RaisedRequest.raised_at, RaisedRequest.request_id)
                    .limit(limit)
                    .offset(offset)
                )
            ).scalars()
            return [row.model_dump() for row in rows]

    async def _credit_fulfilment(
        self, uow: UnitOfWork, request_id: str, volunteer_id: str, service_minutes: int, category: str | None
    ) -> HoursCredited | None:
        units = domain.credit_units(
            service_minutes,
            step_minutes=self.settings.credit_step_minutes,
            rounding=self.settings.credit_rounding,
            max_hours=self.settings.credit_max_hours,
        )
        if units == 0:
            return None
        if await uow.session.get(Member, volunteer_id) is None:
            uow.session.add(
                Member(
                    member_id=volunteer_id,
                    name=volunteer_id,
                    kind="volunteer",
                    opened_by=SYSTEM_ACTOR,
                    created_at=self.clock.now(),
                )
            )
            await uow.session.flush()
        shown = f" ({category})" if category else ""
        return await self._earn(
            uow,
            volunteer_id,
            units,
            activity="request_fulfilled",
            reason=f"request {request_id}{shown} fulfilled: {service_minutes} min",
            actor=SYSTEM_ACTOR,
            request_id=request_id,
            idempotency_key=f"fulfilled:{request_id}",
        )
