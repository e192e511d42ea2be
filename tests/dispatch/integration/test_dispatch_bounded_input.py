"""Dispatch's request bodies and lists are bounded: unknown fields refused, no echo, pages."""

from __future__ import annotations


async def test_unknown_fields_are_refused_and_errors_do_not_echo_the_input(dispatch):
    await dispatch.resident("R1")
    typo = await dispatch.client.post(
        "/requests",
        json={"resident_id": "R1", "category": "groceries", "detials": "x"},
        headers=dispatch.as_("resident", "R1"),
    )
    assert typo.status_code == 422 and typo.json()["detail"][0]["type"] == "extra_forbidden"
    echoed = await dispatch.client.post(
        "/volunteers",
        json={"name": "SENTINEL-31", "group": "errands", "lat": "SENTINEL-32", "lon": 1, "capacity": 1, "phone": "1"},
        headers=dispatch.dispatcher,
    )
    assert echoed.status_code == 422 and "SENTINEL" not in echoed.text


async def test_the_request_list_answers_bounded_pages(dispatch):
    await dispatch.resident("R1")
    raised = [(await dispatch.raise_("R1"))["request_id"] for _ in range(4)]
    first = (await dispatch.client.get("/requests", params={"limit": 3}, headers=dispatch.dispatcher)).json()
    rest = (
        await dispatch.client.get("/requests", params={"limit": 3, "offset": 3}, headers=dispatch.dispatcher)
    ).json()
    assert len(first) == 3 and len(rest) == 1
    assert sorted(r["request_id"] for r in first + rest) == sorted(raised)
    assert (await dispatch.client.get("/requests", params={"limit": 0}, headers=dispatch.dispatcher)).status_code == 422


async def test_the_route_sheet_shows_what_residents_typed_as_plain_text(dispatch):
    await dispatch.resident("R1")
    wang = await dispatch.volunteer("Wang")
    typed = '=HYPERLINK("http://evil.example","call") [click](http://evil.example)\nDONE'
    rid = (await dispatch.raise_("R1", "groceries", details=typed))["request_id"]
    assert (await dispatch.get(rid))["status"] == "assigned"
    run_id = (await dispatch.client.post("/runs/plan", json={}, headers=dispatch.dispatcher)).json()["runs"][0][
        "run_id"
    ]
    sheet = (
        await dispatch.client.get(f"/runs/{run_id}", params={"format": "text"}, headers=dispatch.as_("volunteer", wang))
    ).text
    line = next(line for line in sheet.splitlines() if "HYPERLINK" in line)
    assert "— '=HYPERLINK" in line and "[click]" not in line
    assert "\nDONE" not in sheet
