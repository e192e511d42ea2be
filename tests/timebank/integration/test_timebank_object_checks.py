"""A member's own account answers only to that member's resident or volunteer token."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("role", ["partner", "merchant", "building_lead", "grid_worker"])
async def test_a_token_of_another_role_whose_subject_equals_a_member_id_cannot_act_as_that_member(timebank, role):
    await timebank.member("V1")
    await timebank.credit("V1", 2)
    impostor = timebank.as_(role, "V1")
    spend = await timebank.client.post(
        "/redemptions", json={"member_id": "V1", "hours": 1, "purpose": "groceries"}, headers=impostor
    )
    assert spend.status_code == 403, spend.text
    assert (await timebank.client.get("/members/V1/balance", headers=impostor)).status_code == 403
    assert (await timebank.client.get("/members/V1/ledger", headers=impostor)).status_code == 403
    assert (await timebank.balance("V1"))["hours"] == 2
    # the member's own volunteer token still spends
    own = await timebank.client.post(
        "/redemptions",
        json={"member_id": "V1", "hours": 1, "purpose": "groceries"},
        headers=timebank.as_("volunteer", "V1"),
    )
    assert own.status_code == 201, own.text
