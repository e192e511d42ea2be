"""Money under contention: the account row is locked for the length of the transaction
(FOR UPDATE on PostgreSQL, the write lock on SQLite), so racing spenders are serialised
and exactly one gets the last hour."""

from __future__ import annotations

import asyncio


async def test_redemptions_racing_for_the_last_hour_exactly_one_wins(timebank):
    await timebank.member("V1")
    await timebank.credit("V1", 1)
    me = timebank.as_("volunteer", "V1")
    body = {"member_id": "V1", "hours": 1, "purpose": "groceries"}
    answers = await asyncio.gather(*(timebank.client.post("/redemptions", json=body, headers=me) for _ in range(8)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 7, [a.text for a in answers]
    assert (await timebank.balance("V1"))["hours"] == 0
    assert len(await timebank.outbox("HoursRedeemed")) == 1
    assert (await timebank.audit())["balanced"]


async def test_a_coupon_scanned_at_two_tills_at_once_is_redeemed_once(timebank):
    await timebank.member("V1")
    await timebank.credit("V1", 1)
    await timebank.client.post("/merchants", json={"merchant_id": "SHOP", "name": "shop"}, headers=timebank.staff)
    offer = await timebank.client.post(
        "/merchants/SHOP/offers",
        json={"title": "tea", "unit": "points", "price": 5, "quantity": 3},
        headers=timebank.staff,
    )
    coupon = await timebank.client.post(
        "/coupons", json={"member_id": "V1", "offer_id": offer.json()["offer_id"]}, headers=timebank.staff
    )
    assert coupon.status_code == 201, coupon.text
    shop = timebank.as_("merchant", "SHOP")
    code = coupon.json()["code"]
    answers = await asyncio.gather(*(timebank.client.post(f"/coupons/{code}/redeem", headers=shop) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5
    assert len(await timebank.outbox("CouponRedeemed")) == 1
    assert (await timebank.audit())["balanced"]


async def test_concurrent_credits_and_spending_keep_the_books_balanced(timebank):
    members = [await timebank.member(f"V{i}") for i in range(4)]
    for member in members:
        await timebank.credit(member, 2)

    async def churn(member: str) -> list[int]:
        codes = []
        for _ in range(3):
            credit = timebank.client.post(
                "/credits",
                json={"member_id": member, "hours": 0.5, "activity": "patrol", "reason": "night patrol"},
                headers=timebank.staff,
            )
            spend = timebank.client.post(
                "/redemptions", json={"member_id": member, "hours": 1, "purpose": "other"}, headers=timebank.staff
            )
            codes += [r.status_code for r in await asyncio.gather(credit, spend)]
        return codes

    results = await asyncio.gather(*(churn(m) for m in members))
    assert all(code in (201, 409) for codes in results for code in codes), results
    audit = await timebank.audit()
    assert audit["balanced"], audit
    for member in members:
        assert (await timebank.balance(member))["hours"] >= 0
