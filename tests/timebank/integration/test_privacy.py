"""The time bank's part of privacy (docs/privacy.md): an erased resident who is a member
keeps their account and ledger under no name, off the leaderboard, without family links."""

from __future__ import annotations

import dataclasses

from events import record

from common.events.checkin import ResidentErased
from common.topics import CHECKIN_RESIDENTS


async def test_an_erased_member_keeps_the_books_and_loses_the_name(timebank):
    await timebank.member("R1", "resident", name="李四")
    await timebank.member("R2", "resident", name="李小四")
    linked = await timebank.client.post("/members/R1/family", json={"relative_id": "R2", "relation": "child"},
                                        headers=timebank.staff)  # fmt: skip
    assert linked.status_code in (200, 201), linked.text
    await timebank.credit("R1", 2)
    balance = await timebank.balance("R1")

    erased, _ = record(ResidentErased(resident_id="R1", erasure_id="E-1", requested_at=timebank.clock.now()),
                       timebank.clock.now())  # fmt: skip
    await timebank.runtime.runners[0].handle([dataclasses.replace(erased, topic=CHECKIN_RESIDENTS)])

    member = (await timebank.client.get("/members/R1", headers=timebank.staff)).json()
    assert "李四" not in member["name"] and member["family"] == [] and member["public_recognition"] is False
    assert (await timebank.client.get("/members/R2", headers=timebank.staff)).json()["family"] == []
    assert await timebank.balance("R1") == balance
    assert (await timebank.audit())["balanced"] is True
    (confirmation,) = await timebank.outbox("ResidentErasedByTimebank")
    assert confirmation["data"]["records"] == {"members": 1, "family_links": 2, "outbox_events": 0}
