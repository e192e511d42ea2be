"""The grid worker's and the volunteer's days in Debian's Chromium at phone size, against the
running stack: sign in by invitation link, do the day's main task, see the effect through
the services' APIs. Screenshots go to docs/screenshots/grid_worker.png and volunteer.png."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from test_journeys import serious_violations, wait_until

from support import bearer, unique

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
pytestmark = pytest.mark.e2e


def today() -> str:
    return str(datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date())


def api(stack, service: str, method: str, path: str, headers=None, **kwargs):
    with httpx.Client(base_url=stack.url(service), headers=headers or bearer("admin", "admin-1"), timeout=30) as c:
        response = c.request(method, path, **kwargs)
    assert response.status_code < 300, response.text
    return response.json()


def resident(stack, name: str, grid: str, building: str, room: str, **place) -> str:
    body = {
        "name": name,
        "phone": "13800000000",
        "grid_id": grid,
        "building_id": building,
        "unit": "1",
        "room": room,
        "registered_on": str(datetime.fromisoformat(today()).date() - timedelta(days=1)),
        **place,
    }
    return api(stack, "checkin", "POST", "/residents", json=body)["resident_id"]


def invitation(stack, role: str, sub: str, **scopes) -> str:
    return api(stack, "portal", "POST", "/admin/invitations", json={"role": role, "sub": sub, **scopes})["url"]


def tickets_of(stack, resident_id: str) -> list[dict]:
    return [
        t for t in api(stack, "command", "GET", "/tickets", params={"limit": 1000}) if t["resident_id"] == resident_id
    ]


def known_to_dispatch(stack, resident_id: str) -> bool:
    """Dispatch learns residents from check-in's events: a grid worker of another grid is
    refused (403) for a resident it knows, told 404 for one it does not, and nothing is raised."""
    stranger = bearer("grid_worker", "gw-elsewhere", grid_ids=["nowhere"])
    with httpx.Client(base_url=stack.url("dispatch"), headers=stranger, timeout=10) as c:
        answer = c.post("/requests", json={"resident_id": resident_id, "category": "groceries"})
    assert answer.status_code in (403, 404), answer.text
    return answer.status_code == 403


def card(phone, resident_id: str):
    return phone.find_element(By.CSS_SELECTOR, f'.followup[data-resident="{resident_id}"]')


def test_the_grid_worker_calls_down_the_list_and_records_each_outcome(stack, phone):
    grid, building = unique("G"), unique("B")
    fever = resident(stack, "赵敏", grid, building, "101")
    hungry = resident(stack, "李强", grid, building, "102", tags=["elderly", "living_alone"])
    fine = resident(stack, "王芳", grid, building, "103")
    api(
        stack,
        "checkin",
        "POST",
        "/checkins",
        headers=bearer("resident", fever),
        json={"resident_id": fever, "temperature_c": 38.3, "symptoms": ["cough"]},
    )
    api(stack, "checkin", "POST", "/sweeps", json={"date": today()})
    for who in (hungry, fine):  # the command center opens a follow-up ticket for each missed check-in
        wait_until(
            lambda who=who: any(t["kind"] == "followup" for t in tickets_of(stack, who)), "a follow-up ticket", 60
        )
    wait_until(lambda: known_to_dispatch(stack, hungry), "dispatch to know the resident", 60)

    phone.get(invitation(stack, "grid_worker", unique("gw"), grid_ids=[grid]))
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".followups")))
    assert phone.current_url.endswith("/grid")
    names = [e.text for e in phone.find_elements(By.CSS_SELECTOR, ".followup .name")]
    assert names[0] == "赵敏" and set(names) == {"赵敏", "李强", "王芳"}  # fever first
    assert "最近体温 38.3℃" in card(phone, fever).text
    assert card(phone, hungry).find_element(By.CSS_SELECTOR, "a.call").get_attribute("href") == "tel:13800000000"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.save_screenshot(str(SCREENSHOTS / "grid_worker.png"))
    assert phone.execute_script("return document.documentElement.scrollWidth") <= 360
    assert serious_violations(phone) == []

    # 李强 answers: he needs groceries. Tap, choose, say it in his words, send.
    card(phone, hungry).find_element(By.CSS_SELECTOR, "details.help summary").click()
    card(phone, hungry).find_element(By.CSS_SELECTOR, 'input[name=category][value="groceries"]').click()
    card(phone, hungry).find_element(By.NAME, "details").send_keys("家里没菜了")
    card(phone, hungry).find_element(By.CSS_SELECTOR, "button[value=help]").click()
    WebDriverWait(phone, 20).until(lambda p: "done=help" in p.current_url or "error=" in p.current_url)
    assert "done=help" in phone.current_url, phone.current_url
    # 王芳 is fine: one tap
    card(phone, fine).find_element(By.CSS_SELECTOR, "button[value=fine]").click()
    WebDriverWait(phone, 20).until(lambda p: "done=fine" in p.current_url or "error=" in p.current_url)
    assert "done=fine" in phone.current_url, phone.current_url

    [request] = api(stack, "dispatch", "GET", "/requests", params={"resident_id": hungry})
    assert request["category"] == "groceries" and request["details"] == "家里没菜了"
    [followup] = [t for t in tickets_of(stack, hungry) if t["kind"] == "followup"]
    assert followup["stage"] == "resolved" and "已申请买菜" in followup["resolution"]
    [followup] = [t for t in tickets_of(stack, fine) if t["kind"] == "followup"]
    assert followup["stage"] == "resolved"
    assert "已处理" in card(phone, fine).text
    talk = card(phone, hungry).find_element(By.CSS_SELECTOR, "details.talk")
    talk.find_element(By.TAG_NAME, "summary").click()
    assert "您说过“家里没菜了”" in talk.text and "您一个人在家" in talk.text
    if request["volunteer_name"]:  # assigned at once when an errand runner is free
        assert f"志愿者{request['volunteer_name']}把买菜、生活用品送到门口" in talk.text


def test_the_volunteer_follows_the_drawn_route_and_marks_each_stop(stack, phone):
    building, volunteer = unique("B"), unique("V")
    # A corner of the map of its own, so the nearest errand runner is this volunteer.
    depot = (31.4000, 121.6000)
    near = resident(stack, "钱奶奶", "G1", building, "201", lat=31.4010, lon=121.6010)
    far = resident(stack, "孙大爷", "G1", building, "202", lat=31.4030, lon=121.6040)
    dispatcher = bearer("dispatcher", "dispatcher-1")
    body = {
        "volunteer_id": volunteer,
        "name": "李娜",
        "group": "errands",
        "lat": depot[0],
        "lon": depot[1],
        "capacity": 10,
        "phone": "13900000300",
    }
    api(stack, "dispatch", "POST", "/volunteers", headers=dispatcher, json=body)

    def known(resident_id: str) -> bool:  # dispatch learns residents from check-in's events
        with httpx.Client(base_url=stack.url("dispatch"), headers=bearer("resident", resident_id), timeout=10) as c:
            r = c.post("/requests", json={"resident_id": resident_id, "category": "groceries", "details": "大米"})
        return r.status_code == 201

    for who in (near, far):
        wait_until(lambda who=who: known(who), "dispatch to know the resident", 60)
    plan = api(
        stack,
        "dispatch",
        "POST",
        "/runs/plan",
        headers=dispatcher,
        json={"volunteer_ids": [volunteer], "depot_lat": depot[0], "depot_lon": depot[1]},
    )
    [run] = [r for r in plan["runs"] if r["volunteer_id"] == volunteer]
    mine = [s["request_id"] for s in run["stops"]]
    assert len(mine) >= 2

    phone.get(invitation(stack, "volunteer", volunteer))
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "svg.map")))
    assert phone.current_url.endswith("/volunteer")
    circles = phone.find_elements(By.CSS_SELECTOR, "svg.map circle")
    assert len(circles) == len(mine)
    numbers = [e.text for e in phone.find_elements(By.CSS_SELECTOR, "svg.map text")][1 : len(mine) + 1]
    assert numbers == [str(n) for n in range(1, len(mine) + 1)]  # the stops, numbered in order
    stops = [e.get_attribute("data-request") for e in phone.find_elements(By.CSS_SELECTOR, ".stop")]
    assert stops == mine
    first = phone.find_element(By.CSS_SELECTOR, f'.stop[data-request="{mine[0]}"]')
    assert first.find_element(By.PARTIAL_LINK_TEXT, "导航").get_attribute("href").startswith("geo:31.4")
    assert "本月" in phone.page_source
    phone.save_screenshot(str(SCREENSHOTS / "volunteer.png"))
    assert phone.execute_script("return document.documentElement.scrollWidth") <= 360
    assert serious_violations(phone) == []

    first.find_element(By.CSS_SELECTOR, "form.delivered button").click()
    WebDriverWait(phone, 20).until(EC.url_contains("done=delivered"))
    second = phone.find_element(By.CSS_SELECTOR, f'.stop[data-request="{mine[1]}"]')
    second.find_element(By.CSS_SELECTOR, "details.failed summary").click()
    second.find_element(By.CSS_SELECTOR, 'input[name=reason][value="nobody_home"]').click()
    second.find_element(By.CSS_SELECTOR, "details.failed button").click()
    WebDriverWait(phone, 20).until(EC.url_contains("done=failed"))

    delivered = api(stack, "dispatch", "GET", f"/requests/{mine[0]}", headers=dispatcher)
    assert delivered["status"] == "fulfilled" and delivered["service_minutes"] == 20
    missed = api(stack, "dispatch", "GET", f"/requests/{mine[1]}", headers=dispatcher)
    assert missed["failed_attempts"] == 1 and any("家里没人" in (h["note"] or "") for h in missed["history"])

    def credited() -> bool:
        with httpx.Client(base_url=stack.url("timebank"), headers=bearer("volunteer", volunteer), timeout=10) as c:
            r = c.get(f"/members/{volunteer}/balance")
        return r.status_code == 200 and r.json()["hours"] > 0

    wait_until(credited, "the time bank to credit the delivery", 60)
    phone.refresh()
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".hours")))
    hours = phone.find_element(By.CSS_SELECTOR, ".hours").text
    assert hours.startswith("本月：") and not hours.startswith("本月：0 小时")
    assert "已送达 ✓" in phone.find_element(By.CSS_SELECTOR, f'.stop[data-request="{mine[0]}"]').text
