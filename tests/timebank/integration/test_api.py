"""The time bank in-process, on SQLite and PostgreSQL: members, earning, spending,
coupons, rewards, the leaderboard, and bad input that changes nothing."""

from __future__ import annotations

from datetime import timedelta

from events import record

from common.events.dispatch import RequestCancelled, RequestFulfilled, RequestRaised


async def test_a_fulfilled_request_credits_its_volunteer_once(timebank):
    consumer = timebank.app.state.consumer
    fulfilled = RequestFulfilled(request_id="REQ-1", volunteer_id="V-new", service_minutes=50, category="groceries")
    seen, _ = record(
        RequestRaised(
            request_id="REQ-1",
            resident_id="R1",
            category="groceries",
            priority="normal",
            due_by=timebank.clock.now() + timedelta(hours=4),
        ),
        timebank.clock.now(),
    )
    first, event_id = record(fulfilled, timebank.clock.now())
    await consumer.handle([seen, first])
    # The volunteer's account opened on first credit: 50 min rounds to 45 min (nearest 15) = 0.75 h.
    balance = await timebank.balance("V-new")
    assert balance["hours"] == 0.75
    assert balance["points"] == 5 + 8  # request_fulfilled base + 10/hour * 0.75 (rounded half up)

    again, _ = record(fulfilled, timebank.clock.now(), event_id=event_id)  # redelivery
    same_request, _ = record(fulfilled, timebank.clock.now())  # a second event for the same request
    await consumer.handle([again, same_request])

    assert (await timebank.balance("V-new"))["hours"] == 0.75
    credited = await timebank.outbox("HoursCredited")
    assert len(credited) == 1
    assert credited[0]["subject"] == "V-new"
    assert credited[0]["data"]["request_id"] == "REQ-1"
    assert credited[0]["data"]["hours"] == 0.75
    assert credited[0]["causationid"] == event_id
    assert (await timebank.audit())["balanced"]


async def test_staff_credit_other_volunteering_with_a_reason(timebank):
    await timebank.member("V1")
    body = {"member_id": "V1", "hours": 2.5, "activity": "sampling_site", "reason": "sampling site, Sat morning"}
    response = await timebank.client.post("/credits", json=body, headers=timebank.staff)
    assert response.status_code == 201, response.text
    assert response.json()["points"] == 5 + 25

    refused = await timebank.client.post("/credits", json=body, headers=timebank.as_("volunteer", "V1"))
    assert refused.status_code == 403
    ledger = (
        await timebank.client.get("/members/V1/ledger?unit=hours", headers=timebank.as_("volunteer", "V1"))
    ).json()
    [entry] = ledger["entries"]
    assert entry["amount"] == 2.5
    assert entry["reason"] == "sampling site, Sat morning"
    assert entry["by"] == "staff-1"
    assert entry["counterparty"] == ["hours:pool"]


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(timebank):
    await timebank.member("V1")
    await timebank.credit("V1", 1)
    before = await timebank.outbox()
    me = timebank.as_("volunteer", "V1")
    cases = [
        (
            "/credits",
            {"member_id": "V1", "hours": -1, "activity": "publicity", "reason": "x"},
            timebank.staff,
            422,
            "positive",
        ),
        (
            "/credits",
            {"member_id": "V1", "hours": 0.001, "activity": "publicity", "reason": "x"},
            timebank.staff,
            422,
            "multiple of 0.01",
        ),
        (
            "/credits",
            {"member_id": "ghost", "hours": 1, "activity": "publicity", "reason": "x"},
            timebank.staff,
            404,
            "ghost",
        ),
        (
            "/credits",
            {"member_id": "V1", "hours": 1, "activity": "juggling", "reason": "x"},
            timebank.staff,
            422,
            "unknown activity",
        ),
        ("/redemptions", {"member_id": "V1", "hours": -2, "purpose": "groceries"}, me, 422, "positive"),
        ("/redemptions", {"member_id": "V1", "hours": 1.5, "purpose": "groceries"}, me, 409, "not enough"),
        ("/redemptions", {"member_id": "V1", "hours": 1, "purpose": "massage"}, me, 422, "unknown purpose"),
        ("/redemptions", {"member_id": "ghost", "hours": 1, "purpose": "groceries"}, timebank.staff, 404, "ghost"),
        (
            "/redemptions",
            {"member_id": "V1", "hours": 1, "purpose": "groceries", "for_member_id": "stranger"},
            me,
            403,
            "family",
        ),
        (
            "/redemptions",
            {"member_id": "V1", "hours": 1, "purpose": "groceries"},
            timebank.as_("volunteer", "V2"),
            403,
            "V1",
        ),
        ("/coupons/no-such-code/redeem", {}, timebank.as_("merchant", "M1"), 404, "no coupon"),
        ("/coupons", {"member_id": "V1", "offer_id": "nope"}, me, 404, "no offer"),
    ]
    for path, body, headers, code, words in cases:
        response = await timebank.client.post(path, json=body, headers=headers)
        assert response.status_code == code, (path, body, response.text)
        assert words in response.json()["detail"], response.text
    assert (await timebank.balance("V1"))["hours"] == 1
    assert await timebank.outbox() == before
    assert (await timebank.audit())["balanced"]


async def test_members_spend_hours_on_family_and_get_them_back_when_the_request_is_cancelled(timebank):
    await timebank.member("V1")
    await timebank.member("MUM", kind="resident")
    await timebank.credit("V1", 3)
    link = await timebank.client.post(
        "/members/V1/family", json={"relative_id": "MUM", "relation": "parent"}, headers=timebank.staff
    )
    assert link.status_code == 201, link.text
    assert (await timebank.client.get("/members/MUM", headers=timebank.staff)).json()["family"] == [
        {"member_id": "V1", "name": "V1", "relation": "child"}
    ]

    body = {
        "member_id": "V1",
        "hours": 2,
        "purpose": "medicine",
        "details": "insulin",
        "for_member_id": "MUM",
        "redemption_id": "RD-1",
    }
    response = await timebank.client.post("/redemptions", json=body, headers=timebank.as_("volunteer", "V1"))
    assert response.status_code == 201, response.text
    redemption = response.json()
    retried = await timebank.client.post("/redemptions", json=body, headers=timebank.as_("volunteer", "V1"))
    assert retried.status_code == 200 and retried.json()["request_id"] == redemption["request_id"]
    assert (await timebank.balance("V1"))["hours"] == 1

    [redeemed] = await timebank.outbox("HoursRedeemed")
    assert (
        redeemed["data"].items()
        >= {
            "member_id": "V1",
            "for_member_id": "MUM",
            "hours": 2.0,
            "purpose": "medicine",
            "category": "medicine",
            "request_id": redemption["request_id"],
            "redemption_id": "RD-1",
        }.items()
    )

    cancelled = RequestCancelled(
        request_id=redemption["request_id"], reason="no volunteer available", redemption_id="RD-1"
    )
    first, event_id = record(cancelled, timebank.clock.now())
    again, _ = record(cancelled, timebank.clock.now())  # another cancellation event: refunds once
    await timebank.app.state.consumer.handle([first, again])

    assert (await timebank.balance("V1"))["hours"] == 3
    state = (await timebank.client.get("/redemptions/RD-1", headers=timebank.as_("volunteer", "V1"))).json()
    assert state["status"] == "refunded" and state["status_reason"] == "no volunteer available"
    [refunded] = await timebank.outbox("HoursRefunded")
    assert refunded["data"]["hours"] == 2.0 and refunded["causationid"] == event_id
    kinds = [
        e["kind"]
        for e in (await timebank.client.get("/members/V1/ledger?unit=hours", headers=timebank.staff)).json()["entries"]
    ]
    assert kinds == ["refund", "redeem", "earn"]
    assert (await timebank.audit())["balanced"]


async def test_a_served_redemption_is_not_refunded(timebank):
    await timebank.member("V1")
    await timebank.credit("V1", 1)
    redemption = (
        await timebank.client.post(
            "/redemptions", json={"member_id": "V1", "hours": 1, "purpose": "groceries"}, headers=timebank.staff
        )
    ).json()
    consumer = timebank.app.state.consumer
    seen, _ = record(
        RequestRaised(
            request_id=redemption["request_id"],
            resident_id="V1",
            category="groceries",
            priority="normal",
            due_by=timebank.clock.now() + timedelta(hours=4),
        ),
        timebank.clock.now(),
    )
    fulfilled, _ = record(
        RequestFulfilled(request_id=redemption["request_id"], volunteer_id="V2", service_minutes=30),
        timebank.clock.now(),
    )
    late_cancel, _ = record(
        RequestCancelled(request_id=redemption["request_id"], reason="duplicate"), timebank.clock.now()
    )
    await consumer.handle([seen, fulfilled, late_cancel])
    assert (await timebank.balance("V1"))["hours"] == 0
    assert (await timebank.balance("V2"))["hours"] == 0.5  # the volunteer who served it earns
    assert (await timebank.service.redemption(redemption["redemption_id"])).status == "fulfilled"


async def test_coupons_are_bought_with_hours_and_redeemed_once_by_their_merchant(timebank):
    await timebank.member("V1")
    await timebank.credit("V1", 2)
    merchant = await timebank.client.post(
        "/merchants", json={"merchant_id": "SHOP-1", "name": "Li's grocery"}, headers=timebank.staff
    )
    assert merchant.status_code == 201, merchant.text
    shop = timebank.as_("merchant", "SHOP-1")
    offer = await timebank.client.post(
        "/merchants/SHOP-1/offers", json={"title": "10% off", "unit": "hours", "price": 1, "quantity": 1}, headers=shop
    )
    assert offer.status_code == 201, offer.text
    offer_id = offer.json()["offer_id"]

    me = timebank.as_("volunteer", "V1")
    bought = await timebank.client.post("/coupons", json={"member_id": "V1", "offer_id": offer_id}, headers=me)
    assert bought.status_code == 201, bought.text
    code = bought.json()["code"]
    assert len(code) >= 20
    sold_out = await timebank.client.post("/coupons", json={"member_id": "V1", "offer_id": offer_id}, headers=me)
    assert sold_out.status_code == 409 and "sold out" in sold_out.json()["detail"]
    assert (await timebank.balance("V1"))["hours"] == 1

    assert (await timebank.client.post(f"/coupons/{code}/redeem", headers=me)).status_code == 403
    other_shop = await timebank.client.post(f"/coupons/{code}/redeem", headers=timebank.as_("merchant", "SHOP-2"))
    assert other_shop.status_code == 403
    served = await timebank.client.post(f"/coupons/{code}/redeem", headers=shop)
    assert served.status_code == 200, served.text
    assert served.json()["status"] == "redeemed"
    twice = await timebank.client.post(f"/coupons/{code}/redeem", headers=shop)
    assert twice.status_code == 409 and "already redeemed" in twice.json()["detail"]

    assert [e["data"]["merchant_id"] for e in await timebank.outbox("CouponIssued")] == ["SHOP-1"]
    assert len(await timebank.outbox("CouponRedeemed")) == 1
    audit = await timebank.audit()
    assert audit["balanced"], audit


async def test_points_buy_rewards_and_the_leaderboard_respects_opt_outs(timebank):
    for member in ("A", "B", "C"):
        await timebank.member(member)
    await timebank.credit("A", 3)
    await timebank.credit("B", 5)
    await timebank.credit("C", 1)
    rice = await timebank.client.post(
        "/rewards", json={"reward_id": "rice", "name": "rice 5kg", "points": 30, "quantity": 2}, headers=timebank.staff
    )
    assert rice.status_code == 201, rice.text
    claim = await timebank.client.post(
        "/rewards/rice/claims", json={"member_id": "B"}, headers=timebank.as_("volunteer", "B")
    )
    assert claim.status_code == 201, claim.text
    assert (await timebank.balance("B"))["points"] == 3 + 50 - 30
    poor = await timebank.client.post(
        "/rewards/rice/claims", json={"member_id": "C"}, headers=timebank.as_("volunteer", "C")
    )
    assert poor.status_code == 409 and "not enough" in poor.json()["detail"]

    opt_out = await timebank.client.put(
        "/members/A/recognition", json={"public": False}, headers=timebank.as_("volunteer", "A")
    )
    assert opt_out.status_code == 200
    board = (await timebank.client.get("/leaderboard", headers=timebank.as_("resident", "R1"))).json()
    assert board["month"] == "2026-11"
    assert [(e["rank"], e["member_id"], e["hours"]) for e in board["entries"]] == [(1, "B", 5.0), (2, "C", 1.0)]
    next_month = (await timebank.client.get("/leaderboard?month=2026-12", headers=timebank.staff)).json()
    assert next_month == {"month": "2026-12", "entries": []}
    bad = await timebank.client.get("/leaderboard?month=November", headers=timebank.staff)
    assert bad.status_code == 422


async def test_members_see_only_their_own_books(timebank):
    await timebank.member("V1")
    await timebank.member("V2")
    assert (
        await timebank.client.get("/members/V1/balance", headers=timebank.as_("volunteer", "V2"))
    ).status_code == 403
    assert (await timebank.client.get("/members/V1/ledger", headers=timebank.as_("volunteer", "V1"))).status_code == 200
    assert (await timebank.client.get("/members/V1/balance")).status_code == 401
    mine = await timebank.client.post(
        "/members", json={"name": "Wang", "kind": "resident"}, headers=timebank.as_("resident", "R9")
    )
    assert mine.status_code == 201 and mine.json()["member_id"] == "R9"
    theirs = await timebank.client.post(
        "/members", json={"member_id": "R8", "name": "Wang", "kind": "resident"}, headers=timebank.as_("resident", "R9")
    )
    assert theirs.status_code == 403
    again = await timebank.client.post(
        "/members", json={"member_id": "V1", "name": "V1", "kind": "volunteer"}, headers=timebank.staff
    )
    assert again.status_code == 409
