"""The time bank's request bodies are bounded: unknown fields refused, errors never echo input."""

from __future__ import annotations


async def test_unknown_fields_are_refused_and_errors_do_not_echo_the_input(timebank):
    typo = await timebank.client.post(
        "/members", json={"member_id": "V1", "name": "x", "kind": "volunteer", "hours": 9}, headers=timebank.staff
    )
    assert typo.status_code == 422 and typo.json()["detail"][0]["type"] == "extra_forbidden"
    echoed = await timebank.client.post(
        "/members", json={"member_id": "V1", "name": "x", "kind": "SENTINEL-55"}, headers=timebank.staff
    )
    assert echoed.status_code == 422 and "SENTINEL" not in echoed.text
    overlong = await timebank.client.post(
        "/members", json={"member_id": "V1", "name": "x" * 5000, "kind": "volunteer"}, headers=timebank.staff
    )
    assert overlong.status_code == 422
