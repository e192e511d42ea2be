"""Without I/O: the command center's board columns, the community's outline from its
buildings, the decision prompts read off DemandSurge and SamplingLagging tickets, and the
live feed handing ticket events to open boards (ids and types only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from portal import command_center as cc
from portal.live import LiveFeed


def test_open_tickets_go_to_their_stage_column_overdue_first():
    tickets = [
        {"ticket_id": "T1", "stage": "discovered", "overdue": None, "resolve_by": "2026-11-21T10:00:00+00:00"},
        {"ticket_id": "T2", "stage": "discovered", "overdue": "respond", "resolve_by": "2026-11-22T10:00:00+00:00"},
        {"ticket_id": "T3", "stage": "responding", "overdue": None, "resolve_by": "2026-11-21T10:00:00+00:00"},
        {"ticket_id": "T4", "stage": "closed", "overdue": None, "resolve_by": "2026-11-21T10:00:00+00:00"},
    ]
    columns = cc.columns(tickets)
    assert list(columns) == ["discovered", "reopened", "responding", "resolved"]
    assert [t["ticket_id"] for t in columns["discovered"]] == ["T2", "T1"]
    assert [t["ticket_id"] for t in columns["responding"]] == ["T3"] and columns["reopened"] == []


def test_the_outline_encloses_every_building():
    buildings = [(31.2301, 121.4731), (31.2312, 121.4745), (31.2295, 121.4752), (31.2304, 121.4742)]
    corners = cc.outline(buildings)
    assert len(corners) == 3  # the inner building is not a corner

    def inside(point) -> bool:  # on the left of every edge of the counter-clockwise hull
        n = len(corners)
        for i in range(n):
            (a_lat, a_lon), (b_lat, b_lon) = corners[i], corners[(i + 1) % n]
            if (b_lat - a_lat) * (point[1] - a_lon) - (b_lon - a_lon) * (point[0] - a_lat) < 0:
                return False
        return True

    assert all(inside(b) for b in buildings)
    assert len(cc.outline([(31.23, 121.47)])) == 4  # one building: a box around it
    assert cc.outline([]) == []


def test_prompts_read_a_surge_against_its_baseline_and_a_building_lagging():
    tickets = [
        {"ticket_id": "T1", "kind": "sampling_lagging", "facts": {"building_id": "B05", "completion_rate": 0.6, "round_id": "R1"}},
        {"ticket_id": "T2", "kind": "demand_surge", "facts": {"category": "groceries", "count": 30, "baseline": 10}},
        {"ticket_id": "T3", "kind": "demand_surge", "facts": {"category": "medicine", "count": 4, "baseline": 0}},
        {"ticket_id": "T4", "kind": "fever", "facts": {}},
    ]  # fmt: skip
    prompts = {p.ticket_id: p for p in cc.prompts(tickets)}
    assert set(prompts) == {"T1", "T2", "T3"}
    assert (prompts["T2"].key, prompts["T2"].values["ratio"]) == ("board.prompt.surge", "3.0")
    assert (prompts["T3"].key, prompts["T3"].values["count"]) == ("board.prompt.surge_new", 4)
    assert (prompts["T1"].values["building"], prompts["T1"].values["rate"], prompts["T1"].building_id) == (
        "B05", 60, "B05",
    )  # fmt: skip


async def test_the_live_feed_hands_ticket_events_to_open_boards_only_while_they_are_open():
    feed = LiveFeed({})
    async with feed.watch_tickets() as board, feed.watch(frozenset({"R1"})) as household:
        feed.publish_ticket("TicketOpened", "T-1")
        assert board.get_nowait() == ("T-1", "TicketOpened")
        assert household.empty()  # a household page hears check-ins, not tickets
        for i in range(150):  # a board that fell behind drops what does not fit; it reloads anyway
            feed.publish_ticket("TicketUpdated", f"T-{i}")
        assert board.qsize() == 100
        while not board.empty():
            board.get_nowait()
    feed.publish_ticket("TicketOpened", "T-2")  # the board closed: nothing more reaches its queue
    assert board.empty()


def test_the_vendored_leaflet_is_the_package_s_files_with_its_licence():
    portal = Path(cc.__file__).parent
    vendored = (portal.parent / "VENDORED.md").read_text()
    for name in ("leaflet-1.9.4.js", "leaflet-1.9.4.css"):
        digest = hashlib.sha256((portal / "static" / name).read_bytes()).hexdigest()
        assert f"`portal/static/{name}`" in vendored and digest in vendored, name
    assert "BSD 2-Clause" in (portal / "licenses" / "leaflet-1.9.4.LICENSE").read_text()
