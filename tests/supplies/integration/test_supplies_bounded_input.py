"""Supplies' request bodies and lists are bounded: unknown fields refused, no echo, pages."""

from __future__ import annotations


async def test_unknown_fields_are_refused_and_errors_do_not_echo_the_input(supplies):
    item = await supplies.client.post(
        "/items",
        json={"sku": "MASK", "name": "口罩", "unit": "box", "category": "protective", "thresold": 5},
        headers=supplies.officer,
    )
    assert item.status_code == 422 and item.json()["detail"][0]["type"] == "extra_forbidden"
    echoed = await supplies.client.post(
        "/depots", json={"name": "SENTINEL-91", "lat": "SENTINEL-92"}, headers=supplies.officer
    )
    assert echoed.status_code == 422 and "SENTINEL" not in echoed.text


async def test_list_endpoints_answer_bounded_pages(supplies):
    for n in range(5):
        await supplies.depot(f"Station {n}")
    first = await supplies.client.get("/depots", params={"limit": 2}, headers=supplies.officer)
    rest = await supplies.client.get("/depots", params={"limit": 10, "offset": 2}, headers=supplies.officer)
    assert len(first.json()) == 2 and len(rest.json()) == 3
    assert {d["depot_id"] for d in first.json()}.isdisjoint(d["depot_id"] for d in rest.json())
    too_many = await supplies.client.get("/depots", params={"limit": 100_000}, headers=supplies.officer)
    assert too_many.status_code == 422


async def test_a_body_over_the_service_limit_is_413(supplies):
    answer = await supplies.client.post(
        "/depots",
        content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
        headers={**supplies.officer, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
