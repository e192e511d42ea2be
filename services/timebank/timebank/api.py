"""Time-bank HTTP routes: parse, authorise, call the use case, shape the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field

from common.auth import CurrentUser, Principal, Role, require
from common.limits import Paged, RequestModel
from timebank import domain
from timebank.service import TimebankService, coupon_view, offer_view, redemption_view

router = APIRouter()


async def get_service(request: Request) -> TimebankService:
    return request.app.state.service


Service = Annotated[TimebankService, Depends(get_service)]
Staff = Annotated[Principal, Depends(require(Role.command))]
MerchantUser = Annotated[Principal, Depends(require(Role.merchant))]


def actor(user: Principal) -> domain.Actor:
    return domain.Actor(user.sub, user.role)


def ensure_self_or_staff(user: Principal, member_id: str, doing: str) -> None:
    domain.ensure_self_or_staff(actor(user), member_id, doing)


# -- members ----------------------------------------------------------------------------


class MemberIn(RequestModel):
    member_id: str | None = Field(default=None, description="defaults to your token's subject (staff: generated)")
    name: str = Field(max_length=100)
    kind: domain.MemberKind


class MemberOut(BaseModel):
    member_id: str
    name: str
    kind: str
    public_recognition: bool
    created_at: datetime


@router.post("/members", status_code=status.HTTP_201_CREATED, response_model=MemberOut, tags=["members"])
async def register_member(body: MemberIn, user: CurrentUser, service: Service):
    """Open a member (volunteer or resident) with an hours and a points account. Staff
    register anyone; a person registers themselves (member_id = their token's subject)."""
    return await service.register_member(actor(user), body.member_id, body.name, body.kind)


@router.get("/members/{member_id}", tags=["members"])
async def get_member(member_id: str, user: CurrentUser, service: Service) -> dict:
    ensure_self_or_staff(user, member_id, "see this member")
    return await service.member(member_id)


class FamilyIn(RequestModel):
    relative_id: str
    relation: str = Field(description=f"the relative is the member's: {', '.join(domain.RELATIONS)}")


@router.post("/members/{member_id}/family", status_code=status.HTTP_201_CREATED, tags=["members"])
async def link_family(member_id: str, body: FamilyIn, user: Staff, service: Service) -> dict:
    """Record a family link (checked by community staff) so hours can be spent on a parent or child."""
    return await service.link_family(actor(user), member_id, body.relative_id, body.relation)


class RecognitionIn(RequestModel):
    public: bool = Field(description="false: leave the public leaderboard (公开表彰)")


@router.put("/members/{member_id}/recognition", response_model=MemberOut, tags=["members"])
async def set_recognition(member_id: str, body: RecognitionIn, user: CurrentUser, service: Service):
    return await service.set_recognition(actor(user), member_id, body.public)


@router.get("/members/{member_id}/balance", tags=["ledger"])
async def balance(member_id: str, user: CurrentUser, service: Service) -> dict:
    """Hours and points, derived from the member's ledger entries."""
    ensure_self_or_staff(user, member_id, "see this balance")
    return await service.balance(member_id)


@router.get("/members/{member_id}/ledger", tags=["ledger"])
async def ledger(
    member_id: str,
    user: CurrentUser,
    service: Service,
    unit: domain.Unit | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(description="entry_id to page back from")] = None,
) -> dict:
    """Every movement of the member's hours and points, newest first, with who caused it."""
    ensure_self_or_staff(user, member_id, "see this ledger")
    entries = await service.ledger(member_id, unit, limit, before)
    return {
        "member_id": member_id,
        "entries": entries,
        "next_before": entries[-1]["entry_id"] if len(entries) == limit else None,
    }


@router.get("/members/{member_id}/coupons", tags=["coupons"])
async def member_coupons(member_id: str, user: CurrentUser, service: Service) -> dict:
    ensure_self_or_staff(user, member_id, "see these coupons")
    coupons = await service.member_coupons(member_id)
    return {"member_id": member_id, "coupons": [coupon_view(c, with_code=c.status == "issued") for c in coupons]}


# -- earning ----------------------------------------------------------------------------


class CreditIn(RequestModel):
    member_id: str
    hours: float
    activity: str = Field(description="publicity, sampling_site, patrol, other (see TIMEBANK_POINTS_PER_ACTIVITY)")
    reason: str = Field(max_length=300)


@router.post("/credits", status_code=status.HTTP_201_CREATED, tags=["ledger"])
async def credit(body: CreditIn, user: Staff, service: Service) -> dict:
    """Staff credit volunteering that is not a dispatch request (publicity shifts,
    sampling-site help), with a reason; emits `HoursCredited`."""
    event = await service.credit(actor(user), body.member_id, body.hours, body.activity, body.reason)
    return event.model_dump()


@router.get("/fulfilments", tags=["ledger"])
async def fulfilments_awaiting_approval(_: Staff, service: Service, page: Paged) -> dict:
    """Fulfilments whose self-reported service minutes exceed their category's cap
    (TIMEBANK_CREDIT_REVIEW_MINUTES[_BY_CATEGORY]): nothing is credited until staff approve."""
    return {"fulfilments": await service.fulfilments_awaiting_approval(page.limit, page.offset)}


class ApprovalIn(RequestModel):
    service_minutes: int | None = Field(
        default=None, ge=0, le=1440, description="fewer than reported; default: as reported"
    )


@router.post("/fulfilments/{request_id}/approve", tags=["ledger"])
async def approve_fulfilment(request_id: str, body: ApprovalIn, user: Staff, service: Service) -> dict:
    """Approve a waiting fulfilment's minutes: the volunteer is credited once (`HoursCredited`)."""
    event = await service.approve_fulfilment(actor(user), request_id, body.service_minutes)
    return {"request_id": request_id, "credited": event.model_dump() if event else None}


# -- spending on services ----------------------------------------------------------------


class RedemptionIn(RequestModel):
    member_id: str
    hours: float
    purpose: str = Field(description=f"one of {', '.join(domain.PURPOSES)}")
    details: str | None = Field(default=None, max_length=500)
    for_member_id: str | None = Field(default=None, description="a family member the service is for")
    redemption_id: str | None = Field(default=None, max_length=40, description="makes a retried call safe")


@router.post("/redemptions", status_code=status.HTTP_201_CREATED, tags=["redemptions"])
async def redeem(body: RedemptionIn, user: CurrentUser, service: Service, response: Response) -> dict:
    """Spend hours on a service for yourself or a family member. Emits `HoursRedeemed`
    with the request_id dispatch raises; if dispatch cancels it, the hours come back."""
    redemption, created = await service.redeem(
        actor(user), body.member_id, body.hours, body.purpose, body.details, body.for_member_id, body.redemption_id
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return redemption_view(redemption)


@router.get("/redemptions/{redemption_id}", tags=["redemptions"])
async def get_redemption(redemption_id: str, user: CurrentUser, service: Service) -> dict:
    redemption = await service.redemption(redemption_id)
    ensure_self_or_staff(user, redemption.member_id, "see this redemption")
    return redemption_view(redemption)


# -- merchants and coupons ----------------------------------------------------------------


class MerchantIn(RequestModel):
    merchant_id: str | None = Field(default=None, description="the subject of the merchant's token")
    name: str = Field(max_length=100)
    address: str | None = Field(default=None, max_length=200)


@router.post("/merchants", status_code=status.HTTP_201_CREATED, tags=["coupons"])
async def add_merchant(body: MerchantIn, _: Staff, service: Service) -> dict:
    merchant = await service.add_merchant(body.merchant_id, body.name, body.address)
    return merchant.model_dump()


class OfferIn(RequestModel):
    title: str = Field(max_length=200)
    unit: str = Field(description="hours or points")
    price: float
    quantity: int


@router.post("/merchants/{merchant_id}/offers", status_code=status.HTTP_201_CREATED, tags=["coupons"])
async def add_offer(merchant_id: str, body: OfferIn, user: CurrentUser, service: Service) -> dict:
    """A merchant's offer, priced in hours or points, with how many are left."""
    offer = await service.add_offer(actor(user), merchant_id, body.title, body.unit, body.price, body.quantity)
    return offer_view(offer)


@router.get("/offers", tags=["coupons"])
async def offers(_: CurrentUser, service: Service, merchant_id: str | None = None) -> dict:
    return {"offers": await service.offers(merchant_id)}


class CouponIn(RequestModel):
    offer_id: str
    member_id: str


@router.post("/coupons", status_code=status.HTTP_201_CREATED, tags=["coupons"])
async def buy_coupon(body: CouponIn, user: CurrentUser, service: Service) -> dict:
    """Buy a coupon with hours or points: the answer holds its unguessable code (show it at the shop)."""
    coupon = await service.buy_coupon(actor(user), body.member_id, body.offer_id)
    return coupon_view(coupon, with_code=True)


@router.post("/coupons/{code}/redeem", tags=["coupons"])
async def redeem_coupon(code: str, user: MerchantUser, service: Service) -> dict:
    """The merchant serves a coupon, once; a second redemption is a 409."""
    coupon = await service.redeem_coupon(actor(user), code)
    return coupon_view(coupon, with_code=False)


# -- rewards and recognition ----------------------------------------------------------------


class RewardIn(RequestModel):
    reward_id: str | None = None
    name: str = Field(max_length=100, description="rice, flour, oil, ...")
    points: int
    quantity: int


@router.post("/rewards", status_code=status.HTTP_201_CREATED, tags=["rewards"])
async def add_reward(body: RewardIn, _: Staff, service: Service) -> dict:
    reward = await service.add_reward(body.reward_id, body.name, body.points, body.quantity)
    return reward.model_dump()


@router.get("/rewards", tags=["rewards"])
async def rewards(_: CurrentUser, service: Service) -> dict:
    return {"rewards": [r.model_dump() for r in await service.rewards()]}


class ClaimIn(RequestModel):
    member_id: str


@router.post("/rewards/{reward_id}/claims", status_code=status.HTTP_201_CREATED, tags=["rewards"])
async def claim_reward(reward_id: str, body: ClaimIn, user: CurrentUser, service: Service) -> dict:
    """Exchange points for a reward from the catalog."""
    claim = await service.claim_reward(actor(user), body.member_id, reward_id)
    return claim.model_dump()


@router.get("/leaderboard", tags=["rewards"])
async def leaderboard(
    _: CurrentUser,
    service: Service,
    month: Annotated[str | None, Query(description="YYYY-MM; this month by default")] = None,
) -> dict:
    """The month's most generous helpers (公开表彰): hours then points earned; members who
    opted out are not shown."""
    return await service.leaderboard(month)


@router.get("/ledger/audit", tags=["ledger"])
async def audit(_: Staff, service: Service) -> dict:
    """Check the books: all accounts sum to zero, every transfer balances, no drift."""
    return await service.audit()
