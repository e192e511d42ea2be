"""Time-bank use cases: load, decide (domain), post transfers and stage events, in one
transaction. Routes (api.py) and consumers (handlers.py) call these; a consumer passes the
unit of work it records the event in, so the effect and the inbox commit together.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, func, select, update

from common.clock import day_bounds, local_date
from common.db import insert_ignore
from common.errors import Conflict, Invalid, NotFound
from common.events.dispatch import RequestCancelled, RequestFulfilled
from common.events.timebank import (
    CouponIssued,
    CouponRedeemed,
    HoursCredited,
    HoursRedeemed,
    HoursRefunded,
)
from common.outbox import UnitOfWork
from common.runtime import Runtime
from timebank import domain
from timebank.domain import Actor
from timebank.models import (
    Account,
    Coupon,
    FamilyLink,
    LedgerEntry,
    Member,
    Merchant,
    Offer,
    Redemption,
    Reward,
    RewardClaim,
    Transfer,
)
from timebank.settings import TimebankSettings

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "dispatch"  # movements caused by dispatch's events


@dataclass(frozen=True)
class Posted:
    """A transfer written to the ledger, with the balances it left."""

    transfer: Transfer
    balances: dict[str, int]


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class TimebankService:
    def __init__(self, runtime: Runtime, settings: TimebankSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.tz = settings.tz
        self.member_overdraft = domain.to_units(settings.member_overdraft_hours, "hours") if settings.member_overdraft_hours else 0

    @property
    def clock(self):
        return self.runtime.clock

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    # -- the ledger ---------------------------------------------------------------------

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
        if self.runtime.db.is_sqlite:
            # SQLite has no FOR UPDATE, and the driver runs a transaction's reads outside it
            # until its first write: a no-op write takes the database's write lock first,
            # so the balance read next cannot be stale (lost updates otherwise).
            await uow.session.execute(
                update(Account).where(Account.account_id.in_(account_ids)).values(balance=Account.balance)
            )
        rows = (
            await uow.session.execute(
                select(Account)
                .where(Account.account_id.in_(account_ids))
                .order_by(Account.account_id)
                .with_for_update()
                .execution_options(populate_existing=True)
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

    # -- members ------------------------------------------------------------------------

    async def register_member(self, actor: Actor, member_id: str | None, name: str, kind: str) -> Member:
        member_id = member_id or (actor.sub if not actor.is_staff else _id("M"))
        domain.ensure_self_or_staff(actor, member_id, "register this member")
        domain.check_member(member_id, name, kind)
        async with self.runtime.work(None) as uow:
            existing = await uow.session.get(Member, member_id)
            if existing is not None:
                raise Conflict(f"member {member_id} already exists", member_id=member_id)
            member = Member(member_id=member_id, name=name.strip(), kind=kind, opened_by=actor.sub, created_at=self.clock.now())
            uow.session.add(member)
            await self._accounts(uow, [domain.member_account(member_id, u) for u in domain.UNITS])
        return member

    async def member(self, member_id: str) -> dict:
        async with self.runtime.db.session() as session:
            member = await session.get(Member, member_id)
            if member is None:
                raise NotFound(f"no member {member_id!r}")
            links = (
                await session.execute(
                    select(FamilyLink, Member.name)
                    .join(Member, Member.member_id == FamilyLink.relative_id)
                    .where(FamilyLink.member_id == member_id)
                    .order_by(FamilyLink.relative_id)
                )
            ).all()
        return {
            "member_id": member.member_id,
            "name": member.name,
            "kind": member.kind,
            "public_recognition": member.public_recognition,
            "created_at": member.created_at,
            "family": [{"member_id": link.relative_id, "name": name, "relation": link.relation} for link, name in links],
        }

    async def _member(self, uow: UnitOfWork, member_id: str, what: str = "member") -> Member:
        member = await uow.session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no {what} {member_id!r}: register them with POST /members first")
        return member

    async def link_family(self, actor: Actor, member_id: str, relative_id: str, relation: str) -> dict:
        inverse = domain.check_relation(member_id, relative_id, relation)
        async with self.runtime.work(None) as uow:
            await self._member(uow, member_id)
            await self._member(uow, relative_id, "relative")
            now = self.clock.now()
            created = await insert_ignore(
                uow.session,
                FamilyLink,
                {"member_id": member_id, "relative_id": relative_id, "relation": relation, "recorded_by": actor.sub, "recorded_at": now},
                ["member_id", "relative_id"],
            )
            if not created:
                raise Conflict(f"{relative_id} is already linked to {member_id}")
            await insert_ignore(
                uow.session,
                FamilyLink,
                {"member_id": relative_id, "relative_id": member_id, "relation": inverse, "recorded_by": actor.sub, "recorded_at": now},
                ["member_id", "relative_id"],
            )
        return {"member_id": member_id, "relative_id": relative_id, "relation": relation}

    async def set_recognition(self, actor: Actor, member_id: str, public: bool) -> Member:
        domain.ensure_self_or_staff(actor, member_id, "change this member's recognition")
        async with self.runtime.work(None) as uow:
            member = await self._member(uow, member_id)
            member.public_recognition = public
        return member

    async def balance(self, member_id: str) -> dict:
        ids = [domain.member_account(member_id, u) for u in domain.UNITS]
        async with self.runtime.db.session() as session:
            if await session.get(Member, member_id) is None:
                raise NotFound(f"no member {member_id!r}")
            # Derived from the entries, not read from the running balance.
            rows = (
                await session.execute(
                    select(
                        LedgerEntry.account_id,
                        func.coalesce(func.sum(LedgerEntry.amount), 0),
                        func.coalesce(func.sum(case((LedgerEntry.amount > 0, LedgerEntry.amount), else_=0)), 0),
                        func.coalesce(func.sum(case((LedgerEntry.amount < 0, -LedgerEntry.amount), else_=0)), 0),
                    )
                    .where(LedgerEntry.account_id.in_(ids))
                    .group_by(LedgerEntry.account_id)
                )
            ).all()
        totals = {account_id: (int(b), int(i), int(o)) for account_id, b, i, o in rows}
        hours = totals.get(ids[0], (0, 0, 0))
        points = totals.get(ids[1], (0, 0, 0))
        return {
            "member_id": member_id,
            "hours": domain.from_units(hours[0], "hours"),
            "points": points[0],
            "hours_in": domain.from_units(hours[1], "hours"),
            "hours_out": domain.from_units(hours[2], "hours"),
            "points_in": points[1],
            "points_out": points[2],
            "overdraft_hours": domain.from_units(self.member_overdraft, "hours"),
            "available_hours": domain.from_units(hours[0] + self.member_overdraft, "hours"),
        }

    async def ledger(self, member_id: str, unit: str | None, limit: int, before: int | None) -> list[dict]:
        units = [unit] if unit else list(domain.UNITS)
        ids = [domain.member_account(member_id, u) for u in units]
        async with self.runtime.db.session() as session:
            if await session.get(Member, member_id) is None:
                raise NotFound(f"no member {member_id!r}")
            query = (
                select(LedgerEntry, Transfer)
                .join(Transfer, Transfer.transfer_id == LedgerEntry.transfer_id)
                .where(LedgerEntry.account_id.in_(ids))
                .order_by(LedgerEntry.entry_id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(LedgerEntry.entry_id < before)
            rows = (await session.execute(query)).all()
            transfer_ids = [t.transfer_id for _, t in rows]
            others: dict[str, list[str]] = {}
            if transfer_ids:
                for transfer_id, account_id in (
                    await session.execute(
                        select(LedgerEntry.transfer_id, LedgerEntry.account_id).where(
                            LedgerEntry.transfer_id.in_(transfer_ids), LedgerEntry.account_id.not_in(ids)
                        )
                    )
                ).all():
                    others.setdefault(transfer_id, []).append(account_id)
        out = []
        for entry, transfer in rows:
            out.append(
                {
                    "entry_id": entry.entry_id,
                    "transfer_id": transfer.transfer_id,
                    "at": entry.created_at,
                    "kind": transfer.kind,
                    "unit": transfer.unit,
                    "amount": domain.from_units(entry.amount, transfer.unit),
                    "balance_after": domain.from_units(entry.balance_after, transfer.unit),
                    "counterparty": others.get(transfer.transfer_id, []),
                    "reason": transfer.reason,
                    "activity": transfer.activity,
                    "by": transfer.actor,
                    "request_id": transfer.request_id,
                    "redemption_id": transfer.redemption_id,
                    "coupon_id": transfer.coupon_id,
                }
            )
        return out

    # -- earning ------------------------------------------------------------------------

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
            domain.move(domain.EARN, "hours", domain.pool_account("hours"), domain.member_account(member_id, "hours"), units),
            reason=reason,
            actor=actor,
            activity=activity,
            request_id=request_id,
            idempotency_key=idempotency_key,
        )
        if points > 0:
            await self._post(
                uow,
                domain.move(domain.AWARD, "points", domain.pool_account("points"), domain.member_account(member_id, "points"), points),
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

    async def credit(self, actor: Actor, member_id: str, hours: float, activity: str, reason: str) -> HoursCredited:
        """Staff credit other volunteering (publicity shifts, sampling-site help) with a reason."""
        units = domain.to_units(hours, "hours")
        if units > domain.to_units(self.settings.credit_max_hours, "hours"):
            raise Invalid(f"at most {self.settings.credit_max_hours} hours can be credited at once, not {hours}")
        if not reason.strip():
            raise Invalid("give a reason: credits are attributed and audited")
        if activity == "request_fulfilled":
            raise Invalid("request_fulfilled hours are credited by dispatch's RequestFulfilled, not by hand")
        async with self.runtime.work(None) as uow:
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
            key = f"fulfilled:{event.request_id}"
            if await self._already(uow, key) is not None:
                log.info("request %s was already credited", event.request_id)
                return None
            units = domain.credit_units(
                event.service_minutes,
                step_minutes=self.settings.credit_step_minutes,
                rounding=self.settings.credit_rounding,
                max_hours=self.settings.credit_max_hours,
            )
            if units == 0:
                return None
            if await uow.session.get(Member, event.volunteer_id) is None:
                uow.session.add(
                    Member(
                        member_id=event.volunteer_id,
                        name=event.volunteer_id,
                        kind="volunteer",
                        opened_by=SYSTEM_ACTOR,
                        created_at=self.clock.now(),
                    )
                )
                await uow.session.flush()
            category = f" ({event.category})" if event.category else ""
            return await self._earn(
                uow,
                event.volunteer_id,
                units,
                activity="request_fulfilled",
                reason=f"request {event.request_id}{category} fulfilled: {event.service_minutes} min",
                actor=SYSTEM_ACTOR,
                request_id=event.request_id,
                idempotency_key=key,
            )

    # -- spending on services -----------------------------------------------------------

    async def redeem(
        self,
        actor: Actor,
        member_id: str,
        hours: float,
        purpose: str,
        details: str | None = None,
        for_member_id: str | None = None,
        redemption_id: str | None = None,
    ) -> tuple[Redemption, bool]:
        """Spend hours on a service for the member or a family member: HoursRedeemed with a
        pre-generated request_id, which dispatch raises. Returns (redemption, created);
        repeating a call with the same redemption_id returns the first result."""
        domain.ensure_self_or_staff(actor, member_id, "spend this member's hours")
        units = domain.to_units(hours, "hours")
        if units > domain.to_units(self.settings.max_redemption_hours, "hours"):
            raise Invalid(f"at most {self.settings.max_redemption_hours} hours can be spent at once, not {hours}")
        domain.check_purpose(purpose)
        async with self.runtime.work(None) as uow:
            if redemption_id:
                existing = await uow.session.get(Redemption, redemption_id)
                if existing is not None:
                    if (existing.member_id, existing.hours, existing.purpose) != (member_id, units, purpose):
                        raise Conflict(f"redemption {redemption_id} exists with other terms")
                    return existing, False
            await self._member(uow, member_id)
            family = (
                await uow.session.execute(select(FamilyLink.relative_id).where(FamilyLink.member_id == member_id))
            ).scalars().all()
            beneficiary = domain.beneficiary(member_id, for_member_id, family)
            redemption_id = redemption_id or _id("RD")
            request_id = _id("TB")
            reason = f"{purpose} for {beneficiary}" + (f": {details}" if details else "")
            posted = await self._post(
                uow,
                domain.move(domain.REDEEM, "hours", domain.member_account(member_id, "hours"), domain.pool_account("hours"), units),
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
            query = select(Redemption).with_for_update()
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
                    domain.REFUND, "hours", domain.pool_account("hours"), domain.member_account(redemption.member_id, "hours"), redemption.hours
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

    # -- merchants and coupons ----------------------------------------------------------

    async def add_merchant(self, merchant_id: str | None, name: str, address: str | None) -> Merchant:
        merchant_id = merchant_id or _id("MC")
        domain.check_member(merchant_id, name, "resident")  # same id and name rules
        async with self.runtime.work(None) as uow:
            if await uow.session.get(Merchant, merchant_id) is not None:
                raise Conflict(f"merchant {merchant_id} already exists", merchant_id=merchant_id)
            merchant = Merchant(merchant_id=merchant_id, name=name.strip(), address=address, created_at=self.clock.now())
            uow.session.add(merchant)
        return merchant

    async def add_offer(self, actor: Actor, merchant_id: str, title: str, unit: str, price: float, quantity: int) -> Offer:
        domain.ensure_merchant_or_staff(actor, merchant_id, "add offers for this merchant")
        if unit not in domain.UNITS:
            raise Invalid(f"unknown price unit {unit!r}; known: {', '.join(domain.UNITS)}")
        units = domain.to_units(price, unit, what="price")
        if quantity <= 0:
            raise Invalid(f"quantity must be positive, not {quantity}")
        if not title.strip():
            raise Invalid("title must not be empty")
        async with self.runtime.work(None) as uow:
            if await uow.session.get(Merchant, merchant_id) is None:
                raise NotFound(f"no merchant {merchant_id!r}")
            offer = Offer(
                offer_id=_id("OF"), merchant_id=merchant_id, title=title.strip(), unit=unit, price=units, remaining=quantity, created_at=self.clock.now()
            )
            uow.session.add(offer)
        return offer

    async def offers(self, merchant_id: str | None = None) -> list[dict]:
        query = select(Offer, Merchant.name).join(Merchant, Merchant.merchant_id == Offer.merchant_id).order_by(Offer.created_at)
        if merchant_id:
            query = query.where(Offer.merchant_id == merchant_id)
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).all()
        return [offer_view(offer, merchant) for offer, merchant in rows]

    async def buy_coupon(self, actor: Actor, member_id: str, offer_id: str) -> Coupon:
        domain.ensure_self_or_staff(actor, member_id, "buy coupons with this member's balance")
        async with self.runtime.work(None) as uow:
            await self._member(uow, member_id)
            offer = await uow.session.get(Offer, offer_id)
            if offer is None:
                raise NotFound(f"no offer {offer_id!r}")
            taken = await uow.session.execute(
                update(Offer).where(Offer.offer_id == offer_id, Offer.remaining > 0).values(remaining=Offer.remaining - 1)
            )
            if not taken.rowcount:
                domain.check_stock(0, f"offer {offer_id} ({offer.title})")
            coupon = Coupon(
                coupon_id=_id("CP"),
                code=secrets.token_urlsafe(16),  # 128 bits: unguessable
                offer_id=offer_id,
                merchant_id=offer.merchant_id,
                member_id=member_id,
                unit=offer.unit,
                price=offer.price,
                issued_at=self.clock.now(),
            )
            await self._post(
                uow,
                domain.move(
                    domain.COUPON_PURCHASE, offer.unit, domain.member_account(member_id, offer.unit), domain.escrow_account(offer.unit), offer.price
                ),
                reason=f"coupon for {offer.title}",
                actor=actor.sub,
                coupon_id=coupon.coupon_id,
            )
            uow.session.add(coupon)
            uow.emit(
                CouponIssued(
                    coupon_id=coupon.coupon_id,
                    member_id=member_id,
                    merchant_id=offer.merchant_id,
                    offer_id=offer_id,
                    price=domain.from_units(offer.price, offer.unit),
                    unit=offer.unit,
                )
            )
        return coupon

    async def member_coupons(self, member_id: str) -> list[Coupon]:
        async with self.runtime.db.session() as session:
            if await session.get(Member, member_id) is None:
                raise NotFound(f"no member {member_id!r}")
            return list(
                (await session.execute(select(Coupon).where(Coupon.member_id == member_id).order_by(Coupon.issued_at))).scalars()
            )

    async def redeem_coupon(self, actor: Actor, code: str) -> Coupon:
        """The merchant serves a coupon once: escrow -> merchant; a second time is a 409."""
        async with self.runtime.work(None) as uow:
            coupon = (await uow.session.execute(select(Coupon).where(Coupon.code == code))).scalar_one_or_none()
            if coupon is None:
                raise NotFound("no coupon with this code: check it was typed exactly")
            domain.ensure_merchant_or_staff(actor, coupon.merchant_id, "redeem this coupon")
            now = self.clock.now()
            claimed = await uow.session.execute(
                update(Coupon)
                .where(Coupon.coupon_id == coupon.coupon_id, Coupon.status == "issued")
                .values(status="redeemed", redeemed_at=now, redeemed_by=actor.sub)
            )
            if not claimed.rowcount:
                await uow.session.refresh(coupon)
                raise Conflict(f"coupon {coupon.coupon_id} was already redeemed at {coupon.redeemed_at}")
            posted = await self._post(
                uow,
                domain.move(
                    domain.COUPON_REDEMPTION,
                    coupon.unit,
                    domain.escrow_account(coupon.unit),
                    domain.merchant_account(coupon.merchant_id, coupon.unit),
                    coupon.price,
                ),
                reason=f"coupon {coupon.coupon_id} redeemed",
                actor=actor.sub,
                coupon_id=coupon.coupon_id,
            )
            uow.emit(
                CouponRedeemed(
                    coupon_id=coupon.coupon_id,
                    member_id=coupon.member_id,
                    merchant_id=coupon.merchant_id,
                    offer_id=coupon.offer_id,
                    transfer_id=posted.transfer.transfer_id,
                )
            )
            await uow.session.refresh(coupon)
        return coupon

    # -- rewards (积分兑换) --------------------------------------------------------------

    async def add_reward(self, reward_id: str | None, name: str, points: int, quantity: int) -> Reward:
        if points <= 0:
            raise Invalid(f"points must be positive, not {points}")
        if quantity <= 0:
            raise Invalid(f"quantity must be positive, not {quantity}")
        if not name.strip():
            raise Invalid("name must not be empty")
        reward_id = reward_id or _id("RW")
        async with self.runtime.work(None) as uow:
            if await uow.session.get(Reward, reward_id) is not None:
                raise Conflict(f"reward {reward_id} already exists")
            reward = Reward(reward_id=reward_id, name=name.strip(), points=points, remaining=quantity, created_at=self.clock.now())
            uow.session.add(reward)
        return reward

    async def rewards(self) -> list[Reward]:
        async with self.runtime.db.session() as session:
            return list((await session.execute(select(Reward).order_by(Reward.points, Reward.reward_id))).scalars())

    async def claim_reward(self, actor: Actor, member_id: str, reward_id: str) -> RewardClaim:
        domain.ensure_self_or_staff(actor, member_id, "spend this member's points")
        async with self.runtime.work(None) as uow:
            await self._member(uow, member_id)
            reward = await uow.session.get(Reward, reward_id)
            if reward is None:
                raise NotFound(f"no reward {reward_id!r}")
            taken = await uow.session.execute(
                update(Reward).where(Reward.reward_id == reward_id, Reward.remaining > 0).values(remaining=Reward.remaining - 1)
            )
            if not taken.rowcount:
                domain.check_stock(0, f"reward {reward.name}")
            posted = await self._post(
                uow,
                domain.move(domain.REWARD_CLAIM, "points", domain.member_account(member_id, "points"), domain.REWARDS_ACCOUNT, reward.points),
                reason=f"reward: {reward.name}",
                actor=actor.sub,
            )
            claim = RewardClaim(
                claim_id=_id("RC"),
                reward_id=reward_id,
                member_id=member_id,
                points=reward.points,
                transfer_id=posted.transfer.transfer_id,
                claimed_at=self.clock.now(),
            )
            uow.session.add(claim)
        return claim

    # -- recognition and audit ----------------------------------------------------------

    async def leaderboard(self, month: str | None) -> dict:
        first, following = domain.month_bounds(month, self.today())
        start, _ = day_bounds(first, self.tz)
        end, _ = day_bounds(following, self.tz)
        async with self.runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(Account.owner_id, Account.unit, func.sum(LedgerEntry.amount))
                    .join(LedgerEntry, LedgerEntry.account_id == Account.account_id)
                    .join(Transfer, Transfer.transfer_id == LedgerEntry.transfer_id)
                    .where(
                        Account.kind == "member",
                        Transfer.kind.in_([domain.EARN, domain.AWARD]),
                        Transfer.created_at >= start,
                        Transfer.created_at < end,
                    )
                    .group_by(Account.owner_id, Account.unit)
                )
            ).all()
            earned: dict[str, dict[str, int]] = {}
            for owner, unit, amount in rows:
                earned.setdefault(owner, {})[unit] = int(amount)
            members = {
                m.member_id: m
                for m in (await session.execute(select(Member).where(Member.member_id.in_(list(earned))))).scalars()
            }
        standings = [
            domain.Standing(member_id, members[member_id].name, figures.get("hours", 0), figures.get("points", 0))
            for member_id, figures in earned.items()
            if member_id in members and members[member_id].public_recognition
        ]
        ranked = domain.leaderboard(standings, self.settings.leaderboard_size)
        return {
            "month": first.strftime("%Y-%m"),
            "entries": [
                {
                    "rank": rank,
                    "member_id": s.member_id,
                    "name": s.name,
                    "hours": domain.from_units(s.hours, "hours"),
                    "points": s.points,
                }
                for rank, s in ranked
            ],
        }

    async def audit(self) -> dict:
        """The ledger's own check: per unit every entry sums to zero, every transfer balances,
        every running balance equals its entries, no account is below its overdraft."""
        async with self.runtime.db.session() as session:
            sums = dict(
                (await session.execute(select(Account.unit, func.sum(LedgerEntry.amount)).join(Account).group_by(Account.unit))).all()
            )
            balances = dict((await session.execute(select(Account.unit, func.sum(Account.balance)).group_by(Account.unit))).all())
            unbalanced = (
                await session.execute(
                    select(func.count()).select_from(
                        select(LedgerEntry.transfer_id)
                        .group_by(LedgerEntry.transfer_id)
                        .having(func.sum(LedgerEntry.amount) != 0)
                        .subquery()
                    )
                )
            ).scalar_one()
            derived = (
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount).label("total"))
                .group_by(LedgerEntry.account_id)
                .subquery()
            )
            drifted = (
                await session.execute(
                    select(Account.account_id)
                    .outerjoin(derived, derived.c.account_id == Account.account_id)
                    .where(Account.balance != func.coalesce(derived.c.total, 0))
                )
            ).scalars().all()
            overdrawn = (
                await session.execute(
                    select(Account.account_id).where(Account.overdraft.is_not(None), Account.balance < -Account.overdraft)
                )
            ).scalars().all()
            counts = dict((await session.execute(select(Account.unit, func.count()).group_by(Account.unit))).all())
        units = {}
        for unit in domain.UNITS:
            units[unit] = {
                "accounts": int(counts.get(unit, 0)),
                "sum_of_entries": domain.from_units(int(sums.get(unit) or 0), unit),
                "sum_of_balances": domain.from_units(int(balances.get(unit) or 0), unit),
            }
        async with self.runtime.db.session() as session:
            pools = dict(
                (await session.execute(select(Account.unit, Account.balance).where(Account.kind == "pool"))).all()
            )
        for unit in domain.UNITS:
            # What the pool has issued and members, merchants and stores now hold.
            units[unit]["outstanding"] = domain.from_units(-int(pools.get(unit, 0)), unit)
        ok = (
            all(int(sums.get(u) or 0) == 0 and int(balances.get(u) or 0) == 0 for u in domain.UNITS)
            and not unbalanced
            and not drifted
            and not overdrawn
        )
        return {
            "balanced": ok,
            "units": units,
            "unbalanced_transfers": int(unbalanced),
            "drifted_accounts": list(drifted),
            "overdrawn_accounts": list(overdrawn),
        }


def offer_view(offer: Offer, merchant_name: str | None = None) -> dict:
    return {
        "offer_id": offer.offer_id,
        "merchant_id": offer.merchant_id,
        "merchant_name": merchant_name,
        "title": offer.title,
        "unit": offer.unit,
        "price": domain.from_units(offer.price, offer.unit),
        "remaining": offer.remaining,
    }


def coupon_view(coupon: Coupon, *, with_code: bool) -> dict:
    view = {
        "coupon_id": coupon.coupon_id,
        "offer_id": coupon.offer_id,
        "merchant_id": coupon.merchant_id,
        "member_id": coupon.member_id,
        "unit": coupon.unit,
        "price": domain.from_units(coupon.price, coupon.unit),
        "status": coupon.status,
        "issued_at": coupon.issued_at,
        "redeemed_at": coupon.redeemed_at,
    }
    if with_code:
        view["code"] = coupon.code
    return view


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


