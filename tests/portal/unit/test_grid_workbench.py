"""Without I/O: how the grid worker's and the volunteer's pages arrange the services' answers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from portal import workbench
from portal.i18n import Translator
from portal.routes.grid import talk

SHANGHAI = ZoneInfo("Asia/Shanghai")


def item(resident_id: str, **extra) -> dict:
    return {
        "resident_id": resident_id,
        "name": "王建国",
        "phone": "13800000000",
        "grid_id": "G1",
        "address": "B01-1-101",
        "tags": [],
        "anomaly": False,
        "days_missed": 1,
        "last_temperature_c": 36.6,
        "last_checkin_date": "2026-11-20",
        **extra,
    }


def ticket(ticket_id: str, resident_id: str, kind: str = "followup", stage: str = "discovered", **extra) -> dict:
    return {"ticket_id": ticket_id, "resident_id": resident_id, "kind": kind, "stage": stage, "facts": {}, **extra}


def request(resident_id: str, status: str, due_by: str, **extra) -> dict:
    return {
        "resident_id": resident_id,
        "status": status,
        "category": "groceries",
        "due_by": due_by,
        "created_at": "2026-11-21T01:00:00+00:00",
        "details": None,
        "volunteer_name": None,
        "window_start": None,
        "window_end": None,
        **extra,
    }


def test_cards_keep_checkins_order_and_gather_each_residents_tickets_words_and_arrangement():
    followups = [item("R2", anomaly=True, last_temperature_c=38.4), item("R1"), item("R3")]
    tickets = [
        ticket("T1", "R1"),
        ticket("T2", "R2", kind="fever"),
        ticket("T3", "R1", kind="message_reply", facts={"text": "我腿疼  下不了楼"}),
    ]
    requests = [
        request("R1", "fulfilled", "2026-11-20T09:00:00+00:00", details="上次的药"),
        request("R1", "planned", "2026-11-22T09:00:00+00:00", volunteer_name="王芳"),
        request("R1", "assigned", "2026-11-21T09:00:00+00:00", volunteer_name="李娜"),
    ]
    cards = workbench.cards(followups, tickets, requests, SHANGHAI)
    assert [c.resident_id for c in cards] == ["R2", "R1", "R3"]
    assert [c.situation for c in cards] == ["fever", "missed", "missed"]
    assert [t["ticket_id"] for t in cards[1].tickets] == ["T1", "T3"]
    assert cards[1].own_words == "我腿疼 下不了楼"  # what they said by SMS comes before a request's note
    assert cards[1].arranged.volunteer_name == "李娜"  # the soonest of what is on its way
    assert cards[2].tickets == [] and cards[2].arranged is None and cards[2].state == "todo"
    staff_note = ticket("T4", "R3", kind="isolation_difficulty", description="电话回访", reported_by="gw-G1")
    own = ticket("T5", "R3", kind="isolation_difficulty", description="孩子没电脑上网课", reported_by="R3")
    assert workbench.cards([item("R3")], [staff_note], [], SHANGHAI)[0].own_words is None  # the worker's, not theirs
    assert workbench.cards([item("R3")], [staff_note, own], [], SHANGHAI)[0].own_words == "孩子没电脑上网课"


def test_a_card_is_done_when_all_its_tickets_are_resolved_and_working_once_acknowledged():
    card = workbench.Card(item("R1"), "missed", [ticket("T1", "R1", stage="resolved")])
    assert card.state == "done"
    card.tickets.append(ticket("T2", "R1", kind="fever", stage="responding"))
    assert card.state == "working"
    card.tickets.append(ticket("T3", "R1", stage="reopened"))
    assert card.state == "todo"


def test_symptoms_without_fever_are_their_own_situation():
    assert workbench.situation(item("R1", anomaly=True, last_temperature_c=36.8)) == "symptoms"
    assert workbench.situation(item("R1", anomaly=True, last_temperature_c=37.3)) == "fever"


def test_an_outcome_resolves_the_grids_tickets_and_only_acknowledges_the_health_departments():
    tickets = [
        ticket("T1", "R1"),
        ticket("T2", "R1", kind="fever"),
        ticket("T3", "R1", kind="message_reply", stage="responding"),
        ticket("T4", "R1", stage="resolved"),
    ]
    assert workbench.steps(tickets, "fine") == [
        workbench.Step("T1", acknowledge=True, resolve=True),
        workbench.Step("T2", acknowledge=True, resolve=False),
        workbench.Step("T3", acknowledge=False, resolve=True),
    ]
    assert workbench.steps(tickets, "retry") == [
        workbench.Step("T1", acknowledge=True, resolve=False),
        workbench.Step("T2", acknowledge=True, resolve=False),
    ]


def test_the_conversation_is_filled_from_the_facts():
    t = Translator("zh")
    fever = workbench.Card(item("R1", anomaly=True, last_temperature_c=38.2, tags=["living_alone"]), "fever")
    empathise, explain, offer = talk(t, fever, date(2026, 11, 21))
    assert "建国您好" in empathise[1] and "38.2℃" in empathise[1]
    assert "37.3℃" in explain[1]
    assert "社区医生" in offer[1] and "您一个人在家" in offer[1]

    missed = workbench.cards(
        [item("R1", days_missed=2)],
        [],
        [
            request(
                "R1",
                "assigned",
                "2026-11-22T09:00:00+00:00",
                volunteer_name="王芳",
                details="家里没菜了",
                window_start="2026-11-22T06:00:00+00:00",
                window_end="2026-11-22T09:00:00+00:00",
            )
        ],
        SHANGHAI,
    )[0]
    empathise, _, offer = talk(t, missed, date(2026, 11, 21))
    assert "2 天没打卡" in empathise[1] and "您说过“家里没菜了”" in empathise[1]
    assert offer[1] == "已经安排好了：明天 14–17 点志愿者王芳把买菜、生活用品送到门口。"
    english = talk(Translator("en"), missed, date(2026, 11, 21))
    assert (
        english[2][1]
        == "It is arranged: tomorrow 14:00–17:00, volunteer 王芳 brings Groceries and daily needs to your door."
    )


def test_an_arrangement_without_a_window_says_by_when():
    arranged = workbench.arrangement(request("R1", "assigned", "2026-11-21T09:30:00+00:00"), SHANGHAI)
    assert (arranged.day, arranged.start_hour, arranged.by_time) == (date(2026, 11, 21), None, "17:30")
    assert workbench.day_word(date(2026, 11, 25), date(2026, 11, 21)) == ("grid.day.date", {"month": 11, "day": 25})


def test_the_run_map_keeps_order_north_up_inside_the_box_and_closes_at_the_depot():
    run = {
        "depot_lat": 31.2300,
        "depot_lon": 121.4737,
        "stops": [
            {"lat": 31.2330, "lon": 121.4737, "status": "fulfilled"},  # due north of the depot
            {"lat": 31.2300, "lon": 121.4790, "status": "planned"},  # due east
        ],
    }
    drawn = workbench.run_map(run, width=320, height=240, pad=24)
    depot, north, east = drawn.points
    assert [p.n for p in drawn.points] == [0, 1, 2]
    assert north.y < depot.y and abs(north.x - depot.x) < 0.5  # north is up
    assert east.x > depot.x and abs(east.y - depot.y) < 0.5
    assert all(24 - 0.5 <= p.x <= 296.5 and 24 - 0.5 <= p.y <= 216.5 for p in drawn.points)
    assert drawn.path.split() == [f"{p.x},{p.y}" for p in (depot, north, east, depot)]
    assert north.status == "fulfilled" and depot.status is None
    # same scale both ways: ~333 m north and ~503 m east keep their proportion
    assert abs((east.x - depot.x) / (depot.y - north.y) - 503 / 333.6) < 0.02
    assert drawn.scale_m in (50, 100, 200, 500) and 0 < drawn.scale_px < 320


def test_stops_in_one_building_are_not_blown_up_to_fill_the_map():
    run = {"depot_lat": 31.23, "depot_lon": 121.47, "stops": [{"lat": 31.23001, "lon": 121.47001}]}
    depot, stop = workbench.run_map(run).points
    assert abs(stop.x - depot.x) < 5 and abs(stop.y - depot.y) < 5


def test_a_navigation_link_needs_nothing_but_the_phone():
    assert workbench.geo_uri(31.2, 121.47, "王芳 (B01)") == "geo:31.200000,121.470000?q=31.200000,121.470000(王芳 B01)"


def test_the_months_hours_and_points_count_credits_since_the_first():
    start = datetime(2026, 11, 1, tzinfo=SHANGHAI)
    entries = [
        {"at": "2026-11-21T03:00:00+00:00", "unit": "hours", "amount": 0.5},
        {"at": "2026-11-10T03:00:00+00:00", "unit": "points", "amount": 10},
        {"at": "2026-11-12T03:00:00+00:00", "unit": "hours", "amount": -2},  # spent: not effort
        {"at": "2026-10-31T15:59:00+00:00", "unit": "hours", "amount": 3},  # 23:59 on 31 October locally
    ]
    assert workbench.month_totals(entries, start) == {"hours": 0.5, "points": 10}
    assert workbench.month_totals([], datetime(2026, 11, 1, tzinfo=UTC)) == {"hours": 0.0, "points": 0}


def test_the_run_page_draws_each_stop_numbered_and_links_navigation_without_outside_assets():
    from portal.routes.grid import FAIL_REASONS, MINUTES
    from portal.web import TEMPLATES

    stops = [
        {
            "request_id": f"Q{n}",
            "n": n,
            "eta_local": f"10:{n}0",
            "geo": workbench.geo_uri(31.40 + n / 1000, 121.60, "钱奶奶"),
            "lat": 31.40 + n / 1000,
            "lon": 121.60,
            "category": "medicine" if n == 2 else "groceries",
            "items": [{"item_id": "I-1", "quantity": 1}],
            "details": "降压药，胸口闷" if n == 2 else "大米",
            "name": "钱奶奶",
            "phone": "13800000000",
            "building_id": "B01",
            "unit": "1",
            "room": f"20{n}",
            "status": "fulfilled" if n == 1 else "planned",
        }
        for n in (1, 2)
    ]
    run = {"depot_lat": 31.40, "depot_lon": 121.599, "distance_m": 800, "stops": stops}
    run.update(map=workbench.run_map(run), slot="10:00–13:00", back_at="10:40")
    html = TEMPLATES.get_template("volunteer.html").render(
        t=Translator("zh"),
        lang="zh",
        path="/volunteer",
        dev_outbox=False,
        me={"name": "李娜"},
        runs=[run],
        queue=[],
        month={"hours": 1.5, "points": 20},
        minutes=MINUTES,
        reasons=FAIL_REASONS,
        done=None,
        error=None,
    )
    assert html.count("<circle") == 2 and "stroke-dasharray" in html  # the way back dashed
    assert 'href="geo:31.401000,121.600000' in html and 'href="tel:13800000000"' in html
    assert "本月：1.5 小时，20 积分" in html and "1 样东西" in html
    assert "大米" in html and "胸口闷" not in html  # what a medicine stop says of health is not shown
    assert html.count('action="/volunteer/stops/Q2/delivered"') == 1  # the delivered stop has no buttons
    assert 'action="/volunteer/stops/Q1/' not in html and "已送达 ✓" in html
    assert "http://" not in html and "https://" not in html  # nothing from outside the deployment
