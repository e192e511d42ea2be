"""Property: over any sequence of operations, on-hand equals the sum of the ledger's
movements (per depot and per batch), never goes below zero, and what was refused changed
nothing. Driven through the same use cases as the routes and consumers, on a real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from common.errors import DomainError
from supplies.models import Movement

depot = st.integers(0, 1)
quantity = st.integers(1, 40)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), depot, quantity, st.one_of(st.none(), st.integers(0, 6))),
        st.tuples(st.just("issue"), depot, quantity),
        st.tuples(st.just("transfer"), depot, quantity),
        st.tuples(
            st.just("adjust"), depot, quantity, st.sampled_from(["loss", "damage", "expiry", "count_correction"])
        ),
        st.tuples(st.just("count"), depot, quantity),
        st.tuples(st.just("reserve"), quantity),
        st.tuples(st.just("release"), st.integers(0, 9)),
        st.tuples(st.just("fulfil"), st.integers(0, 9)),
        st.tuples(st.just("advance"), st.integers(1, 4)),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_on_hand_is_the_sum_of_movements_and_never_negative(supplies, ops):
    service = supplies.service
    run = uuid.uuid4().hex[:8]
    item = (
        await service.create_item("prop", sku=f"P-{run}", name="kit", unit="kit", category="testing", threshold=5)
    ).item_id
    depots = [(await service.create_depot("prop", name=f"{run}-{n}", lat=31, lon=121)).depot_id for n in range(2)]
    requests: list[str] = []

    async def ledger_lines() -> int:
        async with service.runtime.db.session() as session:
            return await session.scalar(select(func.count()).select_from(Movement).where(Movement.item_id == item))

    for op in ops:
        before = await ledger_lines()
        try:
            match op:
                case ("receive", d, q, days):
                    expires = None if days is None else service.today() + timedelta(days=days)
                    batch = None if days is None else f"B{days}"
                    await service.receive(
                        "prop", depot_id=depots[d], item_id=item, quantity=q, batch=batch, expires_on=expires
                    )
                case ("issue", d, q):
                    await service.issue("prop", depot_id=depots[d], item_id=item, quantity=q)
                case ("transfer", d, q):
                    await service.transfer(
                        "prop", item_id=item, from_depot_id=depots[d], to_depot_id=depots[1 - d], quantity=q
                    )
                case ("adjust", d, q, reason):
                    await service.adjust("prop", depot_id=depots[d], item_id=item, quantity=-q, reason=reason)
                case ("count", d, q):
                    await service.adjust(
                        "prop", depot_id=depots[d], item_id=item, quantity=q, reason="count_correction"
                    )
                case ("reserve", q):
                    requests.append(f"{run}-R{len(requests)}")
                    await service.reserve(requests[-1], [(item, q)], "prop")
                case ("release", k):
                    if requests:
                        await service.release(requests[k % len(requests)], "property test")
                case ("fulfil", k):
                    if requests:
                        await service.fulfil(requests[k % len(requests)], "prop")
                case ("advance", days):
                    supplies.clock.advance(days=days)
        except DomainError:
            assert await ledger_lines() == before, f"{op} was refused but changed the ledger"

        audit = await service.audit()
        assert audit["consistent"], (op, audit["differences"])
        for position in await service.positions(item_id=item):
            assert position.level.on_hand >= 0
            assert position.level.reserved >= 0
            assert position.level.available <= position.level.on_hand + 1e-9
