"""Dispatch's part of privacy (docs/privacy.md): erasing a resident on `ResidentErased`,
and the retention of closed requests."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select, update

from common.events.checkin import ResidentErased
from conftest import START
from dispatch.models import KnownResident, RequestHistory, ServiceRequest


async def count(dispatch, model, *where) -> int:
    async with dispatch.runtime.db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_an_erased_residents_requests_keep_no_trace_of_them(dispatch):
    erased, kept = await dispatch.resident("R1"), await dispatch.resident("R2")
    mine = await dispatch.raise_(erased, "medicine", details="insulin for 李四")
    theirs = await dispatch.raise_(kept, "medicine", details="insulin for 王五")

    await dispatch.deliver(ResidentErased(resident_id=erased, erasure_id="E-1", requested_at=START))

    async with dispatch.runtime.db.session() as session:
        requests = {r.request_id: r for r in (await session.execute(select(ServiceRequest))).scalars()}
    stripped = requests[mine["request_id"]]
    assert (stripped.details, stripped.note, stripped.lat, stripped.lon) == (None, None, None, None)
    assert "李四" not in json.dumps(stripped.model_dump(mode="json"), ensure_ascii=False)
    assert requests[theirs["request_id"]].details == "insulin for 王五"
    assert await count(dispatch, KnownResident, KnownResident.resident_id == erased) == 0
    assert await count(dispatch, KnownResident, KnownResident.resident_id == kept) == 1
    (confirmation,) = await dispatch.outbox("ResidentErasedByDispatch")
    assert confirmation["data"]["erasure_id"] == "E-1"
    assert confirmation["data"]["records"]["requests"] == 1 and confirmation["data"]["records"]["residents"] == 1


async def test_retention_deletes_exactly_the_requests_closed_before_it(dispatch):
    resident = await dispatch.resident("R1")
    old, recent, open_ = [(await dispatch.raise_(resident))["request_id"] for _ in range(3)]
    async with dispatch.runtime.db.session() as session:
        for request_id, days in ((old, 91), (recent, 89)):
            await session.execute(update(ServiceRequest).where(ServiceRequest.request_id == request_id)
                                  .values(status="cancelled", updated_at=START - timedelta(days=days)))  # fmt: skip
        await session.commit()

    result = await dispatch.runtime.run_job("dispatch-retention")

    assert result["deleted"]["requests"] == 1
    assert await count(dispatch, ServiceRequest, ServiceRequest.request_id == old) == 0
    assert await count(dispatch, RequestHistory, RequestHistory.request_id == old) == 0
    assert await count(dispatch, ServiceRequest, ServiceRequest.request_id.in_([recent, open_])) == 2
    assert await count(dispatch, RequestHistory, RequestHistory.request_id == recent) >= 1
    assert (await dispatch.runtime.run_job("dispatch-retention"))["deleted"].get("requests", 0) == 0
