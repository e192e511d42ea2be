"""Merchants, offers and coupons bought with hours or points; rewards claimed with points."""

from __future__ import annotations

import secrets

from sqlalchemy import select, update

from common.errors import Conflict, Invalid, NotFound
from common.events.timebank import CouponIssued, CouponRedeemed
from common.outbox import UnitOfWork
from timebank import domain
from timebank.domain import Actor
from timebank.ledger import Ledger, new_id
from timebank.models import Coupon, Member, Merchant, Offer, Reward, RewardClaim


class Coupons(Ledger):
    async def add_merchant(
        self, merchant_id: str | None, name: str, address: str | None, *, uow: UnitOfWork | None = None
    ) -> Merchant:
        merchant_id = merchant_id or new_id("MC")
        domain.check_member(merchant_id, name, "resident")  # same id and name rules
        async with self.runtime.work(uow) as uow:
            if await uow.session.get(Merchant, merchant_id) is not None:
                raise Conflict(f"merchant {merchant_id} already exists", merchant_id=merchant_id)
            merchant = Merchant(
                merchant_id=merchant_id, name=name.strip(), address=address, created_at=self.clock.now()
            )
            uow.session.add(merchant)
        return merchant

    async def add_offer(
        self,
        actor: Actor,
        merchant_id: str,
        title: str,
        unit: str,
        price: float,
        quantity: int,
        *,
        uow: UnitOfWork | None = None,
    ) -> Offer:
        domain.ensure_merchant_or_staff(actor, merchant_id, "add offers for this merchant")
        if unit not in domain.UNITS:
            raise Invalid(f"unknown price unit {unit!r}; known: {', '.join(domain.UNITS)}")
        units = domain.to_units(price, unit, what="price")
        if quantity <= 0:
            raise Invalid(f"quantity must be positive, not {quantity}")
        if not title.strip():
            raise Invalid("title must not be empty")
        async with self.runtime.work(uow) as uow:
            if await uow.session.get(Merchant, merchant_id) is None:
                raise NotFound(f"no merchant {merchant_id!r}")
            offer = Offer(
                offer_id=new_id("OF"),
                merchant_id=merchant_id,
                title=title.strip(),
                unit=unit,
                price=units,
                remaining=quantity,
                created_at=self.clock.now(),
            )
            uow.session.add(offer)
        return offer

    async def offers(self, merchant_id: str | None = None) -> list[dict]:
        query = (
            select(Offer, Merchant.name)
            .join(Merchant, Merchant.merchant_id == Offer.merchant_id)
            .order_by(Offer.created_at)
        )
        if merchant_id:
            query = query.where(Offer.merchant_id == merchant_id)
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).all()
        return [offer_view(offer, merchant) for offer, merchant in rows]

    async def buy_coupon(self, actor: Actor, member_id: str, offer_id: str, *, uow: UnitOfWork | None = None) -> Coupon:
        domain.ensure_self_or_staff(actor, member_id, "buy coupons with this member's balance")
        async with self.runtime.work(uow) as uow:
            await self._member(uow, member_id)
            offer = await uow.session.get(Offer, offer_id)
            if offer is None:
                raise NotFound(f"no offer {offer_id!r}")
            taken = await uow.session.execute(
                update(Offer)
                .where(Offer.offer_id == offer_id, Offer.remaining > 0)
                .values(remaining=Offer.remaining - 1)
            )
            if not taken.rowcount:
                domain.check_stock(0, f"offer {offer_id} ({offer.title})")
            coupon = Coupon(
                coupon_id=new_id("CP"),
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
                    domain.COUPON_PURCHASE,
                    offer.unit,
                    domain.member_account(member_id, offer.unit),
                    domain.escrow_account(offer.unit),
                    offer.price,
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
                (
                    await session.execute(
                        select(Coupon).where(Coupon.member_id == member_id).order_by(Coupon.issued_at)
                    )
                ).scalars()
            )

    async def redeem_coupon(self, actor: Actor, code: str, *, uow: UnitOfWork | None = None) -> Coupon:
        """The merchant serves a coupon once: escrow -> merchant; a second time is a 409."""
        async with self.runtime.work(uow) as uow:
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

    async def add_reward(
        self, reward_id: str | None, name: str, points: int, quantity: int, *, uow: UnitOfWork | None = None
    ) -> Reward:
        if points <= 0:
            raise Invalid(f"points must be positive, not {points}")
        if quantity <= 0:
            raise Invalid(f"quantity must be positive, not {quantity}")
        if not name.strip():
            raise Invalid("name must not be empty")
        reward_id = reward_id or new_id("RW")
        async with self.runtime.work(uow) as uow:
            if await uow.session.get(Reward, reward_id) is not None:
                raise Conflict(f"reward {reward_id} already exists")
            reward = Reward(
                reward_id=reward_id, name=name.strip(), points=points, remaining=quantity, created_at=self.clock.now()
            )
            uow.session.add(reward)
        return reward

    async def rewards(self) -> list[Reward]:
        async with self.runtime.db.session() as session:
            return list((await session.execute(select(Reward).order_by(Reward.points, Reward.reward_id))).scalars())

    async def claim_reward(
        self, actor: Actor, member_id: str, reward_id: str, *, uow: UnitOfWork | None = None
    ) -> RewardClaim:
        domain.ensure_self_or_staff(actor, member_id, "spend this member's points")
        async with self.runtime.work(uow) as uow:
            await self._member(uow, member_id)
            reward = await uow.session.get(Reward, reward_id)
            if reward is None:
                raise NotFound(f"no reward {reward_id!r}")
            taken = await uow.session.execute(
                update(Reward)
                .where(Reward.reward_id == reward_id, Reward.remaining > 0)
                .values(remaining=Reward.remaining - 1)
            )
            if not taken.rowcount:
                domain.check_stock(0, f"reward {reward.name}")
            posted = await self._post(
                uow,
                domain.move(
                    domain.REWARD_CLAIM,
                    "points",
                    domain.member_account(member_id, "points"),
                    domain.REWARDS_ACCOUNT,
                    reward.points,
                ),
                reason=f"reward: {reward.name}",
                actor=actor.sub,
            )
            claim = RewardClaim(
                claim_id=new_id("RC"),
                reward_id=reward_id,
                member_id=member_id,
                points=reward.points,
                transfer_id=posted.transfer.transfer_id,
                claimed_at=self.clock.now(),
            )
            uow.session.add(claim)
        return claim


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
