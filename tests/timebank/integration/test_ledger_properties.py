"""A property-based stateful test of the ledger, on SQLite and PostgreSQL: whatever members
do (earn, spend, get refunds, buy and use coupons, redeliveries), all accounts always sum
to zero, every transfer balances, and no member's balance goes below zero."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid

from events import record
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from common.clock import ManualClock
from common.errors import Conflict
from common.events.dispatch import RequestCancelled, RequestFulfilled, RequestRaised
from common.vocabulary import Role
from conftest import START, settings_for
from timebank import domain
from timebank.domain import Actor
from timebank.main import create_app

STAFF = Actor("staff-1", Role.command)
MEMBERS = 3


def test_the_ledger_always_sums_to_zero_and_no_balance_goes_negative(database_url):
    loop = asyncio.new_event_loop()
    clock = ManualClock(START)
    app = create_app(settings_for(database_url), clock=clock)
    service, consumer = app.state.service, app.state.consumer
    stack = contextlib.AsyncExitStack()
    loop.run_until_complete(stack.enter_async_context(app.router.lifespan_context(app)))
    run = loop.run_until_complete
    ids = itertools.count()

    class Ledger(RuleBasedStateMachine):
        """The model: what each member should hold; the system must agree and stay balanced."""

        @initialize()
        def open_members(self):
            prefix = f"P{next(ids)}"
            self.members = [f"{prefix}-{i}" for i in range(MEMBERS)]
            self.hours = {m: 0 for m in self.members}
            self.open_redemptions: list[tuple[str, str, int]] = []  # (redemption_id, member, units)
            self.coupons: list[str] = []
            self.delivered: list = []
            for member in self.members:
                run(service.register_member(STAFF, member, member, "volunteer"))
            merchant = run(service.add_merchant(f"{prefix}-shop", "shop", None))
            self.offer = run(service.add_offer(STAFF, merchant.merchant_id, "noodles", "hours", 0.5, 1000)).offer_id

        @rule(member=st.integers(0, MEMBERS - 1), hours=st.integers(1, 300))
        def staff_credit(self, member, hours):
            member_id = self.members[member]
            run(service.credit(STAFF, member_id, hours / 100, "publicity", "shift"))
            self.hours[member_id] += hours

        @rule(member=st.integers(0, MEMBERS - 1), minutes=st.integers(0, 200), redeliver=st.booleans())
        def fulfil(self, member, minutes, redeliver):
            member_id = self.members[member]
            request_id = f"REQ-{uuid.uuid4().hex[:8]}"
            seen = RequestRaised(
                request_id=request_id, resident_id="R1", category="groceries", priority="normal", due_by=clock.now()
            )
            event = RequestFulfilled(request_id=request_id, volunteer_id=member_id, service_minutes=minutes)
            message, event_id = record(event, clock.now())
            batch = [record(seen, clock.now())[0], message]
            batch += [record(event, clock.now(), event_id=event_id)[0]] if redeliver else []
            run(consumer.handle(batch))
            if minutes <= 180:  # more waits for staff approval (TIMEBANK_CREDIT_REVIEW_MINUTES)
                self.hours[member_id] += domain.credit_units(minutes, step_minutes=15, rounding="nearest", max_hours=8)

        @rule(member=st.integers(0, MEMBERS - 1), hours=st.integers(1, 400))
        def redeem(self, member, hours):
            member_id = self.members[member]
            try:
                redemption, _ = run(service.redeem(STAFF, member_id, hours / 100, "groceries"))
            except Conflict:
                assert self.hours[member_id] < hours, "refused a redemption the balance covers"
                return
            assert self.hours[member_id] >= hours, "allowed spending more than the balance"
            self.hours[member_id] -= hours
            self.open_redemptions.append((redemption.request_id, member_id, hours))

        @precondition(lambda self: self.open_redemptions)
        @rule(which=st.integers(0, 100), twice=st.booleans())
        def cancel(self, which, twice):
            request_id, member_id, units = self.open_redemptions.pop(which % len(self.open_redemptions))
            event = RequestCancelled(request_id=request_id, reason="no volunteer")
            run(consumer.handle([record(event, clock.now())[0] for _ in range(2 if twice else 1)]))
            self.hours[member_id] += units

        @rule(member=st.integers(0, MEMBERS - 1))
        def buy_coupon(self, member):
            member_id = self.members[member]
            try:
                coupon = run(service.buy_coupon(STAFF, member_id, self.offer))
            except Conflict:
                assert self.hours[member_id] < 50
                return
            self.hours[member_id] -= 50
            self.coupons.append(coupon.code)

        @precondition(lambda self: self.coupons)
        @rule(which=st.integers(0, 100))
        def use_coupon(self, which):
            code = self.coupons[which % len(self.coupons)]
            with contextlib.suppress(
                Conflict
            ):  # used before: the second use must change nothing (checked by the invariants)
                run(service.redeem_coupon(STAFF, code))

        @invariant()
        def books_balance(self):
            if not hasattr(self, "members"):
                return
            audit = run(service.audit())
            assert audit["balanced"], audit
            for member_id, expected in self.hours.items():
                balance = run(service.balance(member_id))
                assert balance["hours"] == domain.from_units(expected, "hours"), (member_id, balance, expected)
                assert balance["hours"] >= 0 and balance["points"] >= 0

    try:
        run_state_machine_as_test(
            Ledger,
            settings=settings(
                max_examples=12,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        run(stack.aclose())
        loop.close()
