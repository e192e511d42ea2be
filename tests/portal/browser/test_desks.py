"""Desktop journeys in Debian's Chromium against the stack: a police desk signs in by its
invitation, sees the urgent alert, takes and resolves the ticket (command's API shows it
done), hears of a new urgent ticket without reloading; the figures screen draws its charts
with the services' real figures and reads them again by itself; a property desk told of a
fever in its building has no health value in its live DOM. axe-core on each page;
screenshots to docs/screenshots/partner_desk.png and data_screen.png."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from support import bearer, unique, wait_until

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / ".tools/browser/node_modules/axe-core/axe.min.js"
pytestmark = pytest.mark.e2e


@pytest.fixture
def desktop() -> Iterator[webdriver.Chrome]:
    """Chromium at a desk's screen size (1366×900), a fresh profile."""
    profile = tempfile.mkdtemp(prefix="firstline-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1366,900",
        "--lang=zh-CN",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def serious_violations(driver) -> list[str]:
    """axe-core's serious and critical findings on the page the browser shows."""
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: run `make browser-install`")
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; axe.run(document).then(done, e => done({error: String(e)}));"
    )
    assert "error" not in result, result
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def invite(stack, role: str, sub: str, **scope) -> str:
    with stack.admin("portal") as portal:
        response = portal.post("/admin/invitations", json={"role": role, "sub": sub, **scope})
        assert response.status_code == 201, response.text
        return response.json()["url"]


def report(stack, category: str, description: str, building: str, priority: str | None = None) -> str:
    body = {"category": category, "description": description, "building_id": building}
    if priority:
        body["priority"] = priority
    with stack.admin("command") as command:
        response = command.post("/tickets", json=body)
        assert response.status_code == 201, response.text
        return response.json()["ticket_id"]


def test_a_police_desk_takes_and_resolves_an_urgent_ticket_and_hears_of_the_next(stack, desktop):
    building = unique("B")
    first = report(stack, "public_order", "小区北门有人聚集", building, "urgent")
    desktop.get(invite(stack, "partner", unique("police"), department="police"))
    card = WebDriverWait(desktop, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".ticket")))
    reference = card.get_attribute("data-ticket")  # police know the ticket by their own reference
    assert reference.startswith("ref-") and reference != first
    assert desktop.current_url.endswith("/desk")  # a desk lands on its inbox
    alert = desktop.find_element(By.ID, "desk-alert")
    assert alert.get_attribute("role") == "alert" and "紧急工单" in alert.text and alert.is_displayed()
    assert "治安秩序" in card.text and "小区北门有人聚集" not in card.text  # what people wrote stays with command
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    desktop.save_screenshot(str(SCREENSHOTS / "partner_desk.png"))
    found = {"/desk": serious_violations(desktop)}

    card.find_element(By.CSS_SELECTOR, "form.acknowledge button").click()
    card = WebDriverWait(desktop, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'.ticket[data-ticket="{reference}"] form.resolve'))
    )
    assert "已接单" in desktop.find_element(By.CSS_SELECTOR, "p.ok").text
    card.find_element(By.NAME, "resolution").send_keys("民警已到场，人群已疏散")
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(desktop, 20).until(EC.url_contains("done=resolved"))
    with httpx.Client(base_url=stack.url("command"), headers=bearer("command", "cmd-duty"), timeout=10) as command:
        ticket = command.get(f"/tickets/{first}").json()
    assert ticket["stage"] == "resolved" and ticket["resolution"] == "民警已到场，人群已疏散"
    assert ticket["acknowledged_by"] == ticket["resolved_by"] != "cmd-duty"

    # The open page hears of the next urgent ticket by itself (the script asks every PORTAL_DESK_POLL_S).
    alert = desktop.find_element(By.ID, "desk-alert")
    assert alert.text == ""
    second = report(stack, "public_order", "3号楼下有人争吵", building, "urgent")
    wait_until(lambda: "紧急工单" in alert.text, "the alert for a new urgent ticket", timeout=45)
    alert.find_element(By.LINK_TEXT, "刷新列表").click()
    open_cards = WebDriverWait(desktop, 20).until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, ".ticket")))
    shown = {card.get_attribute("data-ticket") for card in open_cards}
    assert shown and reference not in shown and second not in shown  # the new one, by its reference
    desktop.get(stack.url("portal", "/desk?view=done"))
    assert desktop.find_element(By.CSS_SELECTOR, f'.ticket[data-ticket="{reference}"]')
    found["/desk?view=done"] = serious_violations(desktop)
    assert not any(found.values()), found


def seed(stack, building: str, day_round: str) -> dict:
    """Stock under its line, residents of a new building who check in (some), a sampling round
    over it, requests by category: the figures the screen should show."""
    with stack.admin("supplies") as supplies:
        depot = supplies.post("/depots", json={"name": unique("站"), "lat": 31.23, "lon": 121.47}).json()
        item = supplies.post(
            "/items",
            json={
                "sku": unique("M"),
                "name": unique("口罩"),
                "unit": "box",
                "category": "protective",
                "threshold": 100,
            },
        ).json()
        receipt = supplies.post(
            "/stock/receipts", json={"depot_id": depot["depot_id"], "item_id": item["item_id"], "quantity": 30}
        )
        assert receipt.status_code == 201, receipt.text
    residents = []
    with stack.admin() as checkin:
        for i in range(4):
            response = checkin.post(
                "/residents",
                json={"name": f"住户{i}", "phone": "13800000000", "grid_id": "G1", "building_id": building,
                      "unit": "1", "room": f"20{i}"},
            )  # fmt: skip
            assert response.status_code == 201, response.text
            residents.append(response.json()["resident_id"])
        sampling = checkin.post(
            "/sampling/rounds",
            json={"name": day_round, "building_ids": [building], "min_completion_rate": 0.9,
                  "deadline": (datetime.now(UTC) + timedelta(hours=6)).isoformat()},
        )  # fmt: skip
        assert sampling.status_code == 201, sampling.text
        checkin.post(f"/sampling/rounds/{sampling.json()['round_id']}/samples", json={"resident_ids": residents[:1]})
        checked = checkin.post("/checkins", json={"resident_id": residents[0], "temperature_c": 36.5})
        assert checked.status_code == 201, checked.text
    with httpx.Client(base_url=stack.url("dispatch"), timeout=10) as dispatch:

        def raised(resident: str, category: str) -> bool:
            body = {"resident_id": resident, "category": category, "details": "请帮忙"}
            answer = dispatch.post("/requests", json=body, headers=bearer("resident", resident))
            return answer.status_code == 201  # 4xx until dispatch has heard of the resident

        for resident in residents[:3]:
            wait_until(lambda r=resident: raised(r, "groceries"), "dispatch to take a request", timeout=60)
    return {"item": item["name"], "round_id": sampling.json()["round_id"], "residents": residents}


def screen_figures(driver) -> dict:
    return json.loads(driver.find_element(By.ID, "screen-data").get_attribute("textContent"))


def test_the_screen_draws_the_services_figures_and_reads_them_again(stack, desktop):
    building, day_round = unique("B"), unique("第9轮核酸")
    seeded = seed(stack, building, day_round)
    desktop.get(invite(stack, "command", unique("cmd")))
    WebDriverWait(desktop, 20).until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
    desktop.get(stack.url("portal", "/screen"))
    WebDriverWait(desktop, 30).until(
        lambda d: int(d.find_element(By.ID, "screen").get_attribute("data-drawn") or 0) >= 4
    )
    figures = screen_figures(desktop)
    stock = dict(zip(figures["stock"]["labels"], figures["stock"]["low"], strict=True))
    assert any(label.startswith(seeded["item"]) and low for label, low in stock.items())  # red: under its line
    assert figures["sampling"]["name"] == day_round
    assert figures["sampling"]["labels"] == [building] and figures["sampling"]["rates"] == [25.0]
    assert figures["sampling"]["low"] == [True] and figures["sampling"]["line"] == 90.0
    demand = dict(zip(figures["demand"]["labels"], figures["demand"]["counts"], strict=True))
    assert demand.get("买菜、生活用品", 0) >= 3
    assert figures["kpis"] is not None and figures["checkin"] is not None and figures["overdue"] is not None
    for chart in ("stock", "checkin", "sampling", "demand"):
        assert desktop.find_elements(By.CSS_SELECTOR, f"#chart-{chart} canvas"), chart  # drawn by ECharts
    assert all(
        r["name"].startswith(("http://127.0.0.1:18020/", "data:"))
        for r in desktop.execute_script("return performance.getEntriesByType('resource').map(e => ({name: e.name}))")
    )  # nothing from outside the deployment
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    desktop.save_screenshot(str(SCREENSHOTS / "data_screen.png"))
    found = {"/screen": serious_violations(desktop)}
    assert not any(found.values()), found

    # The round moves on: the open screen shows it at its next reading (PORTAL_SCREEN_REFRESH_S).
    with stack.admin() as checkin:
        checkin.post(f"/sampling/rounds/{seeded['round_id']}/samples", json={"resident_ids": seeded["residents"]})
    wait_until(lambda: screen_figures(desktop)["sampling"]["rates"] == [100.0], "the screen to refresh", timeout=60)
    assert desktop.find_elements(By.CSS_SELECTOR, "#chart-sampling canvas")


def test_a_property_desk_shown_a_fever_in_its_building_has_no_health_value_in_its_dom(stack, desktop):
    building = unique("B")
    with stack.admin() as checkin:
        resident = checkin.post(
            "/residents",
            json={"name": "王哨兵", "phone": "13899990000", "grid_id": "G1", "building_id": building, "unit": "哨9",
                  "room": "S909", "tags": ["pregnant"]},
        )  # fmt: skip
        assert resident.status_code == 201, resident.text
        checked = checkin.post(
            "/checkins",
            json={"resident_id": resident.json()["resident_id"], "temperature_c": 39.87,
                  "symptoms": ["loss_of_smell_or_taste"]},
        )  # fmt: skip
        assert checked.status_code in (200, 201), checked.text
    desk = bearer("partner", "property-duty", department="property")

    def told() -> bool:  # command opened the fever ticket and shared it with property
        with httpx.Client(base_url=stack.url("command"), headers=desk, timeout=10) as command:
            return any(e["data"]["building_id"] == building for e in command.get("/partner/tickets").json())

    wait_until(told, "the fever to reach the property desk's topic", timeout=60)
    desktop.get(invite(stack, "partner", unique("property"), department="property"))
    WebDriverWait(desktop, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".tickets")))
    card = next(c for c in desktop.find_elements(By.CSS_SELECTOR, ".ticket") if building in c.text)
    assert "楼栋防疫措施" in card.text and not card.find_elements(By.CSS_SELECTOR, "form")  # told, not owner
    dom = desktop.execute_script("return document.documentElement.outerHTML")
    for sentinel in (
        "39.87",
        "王哨兵",
        "13899990000",
        "S909",
        "哨9",
        "闻不到味",
        "pregnant",
        "体温",
        "症状",
        "°C",
        "发热",
    ):
        assert sentinel not in dom, sentinel
