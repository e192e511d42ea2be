"""Paper and the daily desks in Debian's Chromium, against the stack: the print round trip
(print a building's sheet, key the ticked rows in as a lead would, the sweep finds exactly
the unticked members), the supplies officer's and the dispatcher's day, axe-core on every
page, and the screenshots docs/screenshots/paper_sheet.png, supplies_officer.png, dispatcher.png."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pypdf import PdfReader
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from test_journeys import serious_violations

from support import bearer, unique, wait_until

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
TZ = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.e2e


@pytest.fixture
def desktop() -> Iterator[webdriver.Chrome]:
    """Chromium at a desk (the officer's, the dispatcher's; the sheet at A4's width)."""
    profile = tempfile.mkdtemp(prefix="firstline-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,900", "--lang=zh-CN",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def invitation(stack, role: str, **scope) -> str:
    with stack.admin("portal") as portal:
        response = portal.post("/admin/invitations", json={"role": role, "sub": unique(role), **scope})
        assert response.status_code == 201, response.text
        return response.json()["url"]


def signed_in_as(stack, driver, role: str, **scope) -> str:
    """Opens an invitation link; answers where the person landed."""
    driver.get(invitation(stack, role, **scope))
    WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
    return driver.current_url.removeprefix(stack.url("portal"))


def session_of(stack, driver) -> httpx.Client:
    """An HTTP client with the browser's session cookie (to fetch the PDFs it links to)."""
    cookie = driver.get_cookie("firstline_session")["value"]
    return httpx.Client(base_url=stack.url("portal"), cookies={"firstline_session": cookie}, timeout=60)


def pdf_text(body: bytes) -> str:
    assert body.startswith(b"%PDF"), body[:200]
    return unicodedata.normalize("NFKC", "".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages))


def register(stack, name: str, building: str, grid: str, room: str, since: dt.date) -> str:
    with stack.admin() as checkin:
        response = checkin.post(
            "/residents",
            json={
                "name": name, "phone": "13800000000", "grid_id": grid, "building_id": building, "unit": "1",
                "room": room, "lat": 31.2320, "lon": 121.4750, "registered_on": since.isoformat(),
            },
        )  # fmt: skip
        assert response.status_code == 201, response.text
        return response.json()["resident_id"]


def test_print_the_sheet_key_in_the_ticks_and_the_sweep_finds_exactly_the_unticked(stack, phone, desktop):
    building, grid = unique("B"), unique("G")
    today = dt.datetime.now(TZ).date()
    names = {"王芳": "101", "李强": "101", "赵敏": "102", "孙悦": "201", "钱奶奶": "202"}
    ids = {
        name: register(stack, name, building, grid, room, today - dt.timedelta(days=1)) for name, room in names.items()
    }

    # print: the sheet's page at A4's width, as the printer sees it
    assert signed_in_as(stack, desktop, "building_lead", building_ids=[building]) == "/lead"
    desktop.get(stack.url("portal", f"/paper/buildings/{building}/checkins"))
    rows = WebDriverWait(desktop, 20).until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "tr[data-member]")))
    printed_codes = {r.get_attribute("data-member"): r.find_element(By.CSS_SELECTOR, ".code").text for r in rows}
    assert set(printed_codes) == set(ids.values())
    desktop.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    desktop.set_window_size(794, 1123)  # A4 at 96 dpi
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    desktop.save_screenshot(str(SCREENSHOTS / "paper_sheet.png"))
    desktop.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert not serious_violations(desktop)
    with session_of(stack, desktop) as lead:
        text = pdf_text(lead.get(f"/paper/buildings/{building}/checkins.pdf").content)
    assert "健康打卡登记表" in text and all(name in text for name in names)
    assert all(code in text for code in printed_codes.values())

    # the residents tick three rows; the lead keys the sheet in on the phone
    ticked = {"王芳": ("36.5", None), "李强": ("37.9", "cough"), "钱奶奶": ("36.2", None)}
    assert signed_in_as(stack, phone, "building_lead", building_ids=[building]) == "/lead"
    phone.get(stack.url("portal", f"/paper/buildings/{building}/checkins/entry"))
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.entry")))
    assert not serious_violations(phone)
    for name, (temperature, symptom) in ticked.items():
        row = phone.find_element(By.CSS_SELECTOR, f'li[data-member="{ids[name]}"]')
        assert row.get_attribute("data-code") == printed_codes[ids[name]]  # the paper's row, on the screen
        row.find_element(By.CSS_SELECTOR, 'input[name^="tick."]').click()
        row.find_element(By.CSS_SELECTOR, 'input[name^="t."]').send_keys(temperature)
        if symptom:
            row.find_element(By.TAG_NAME, "summary").click()
            row.find_element(By.CSS_SELECTOR, f'input[value="{symptom}"]').click()
    phone.find_element(By.CSS_SELECTOR, "form.entry button[type=submit]").click()
    done = WebDriverWait(phone, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".ok")))
    assert "已录入 3 人的打卡" in done.text

    with stack.admin() as checkin:
        swept = checkin.post("/sweeps", json={"date": today.isoformat()})
        assert swept.status_code == 200, swept.text
        followups = checkin.get("/followups", params={"grid_id": grid, "date": today.isoformat()}).json()
        household = checkin.get("/households", params={"building_id": building}).json()
    missed = {f["resident_id"] for f in followups["followups"] if f["days_missed"]}
    assert missed == {ids[name] for name in names if name not in ticked}
    statuses = {m["resident_id"]: (m["status"], m["channel"]) for h in household["households"] for m in h["members"]}
    assert statuses[ids["李强"]] == ("needs_attention", "building_lead")
    assert statuses[ids["王芳"]] == ("checked_in", "building_lead")


def test_command_staff_print_the_meeting_agenda_and_every_sheet_is_accessible(stack, desktop):
    building, grid = unique("B"), unique("G")
    register(stack, "吴阿姨", building, grid, "101", dt.datetime.now(TZ).date() - dt.timedelta(days=1))
    signed_in_as(stack, desktop, "command")
    found = {}
    for path, title in (
        ("/paper/agenda", "每日例会议程"),
        (f"/paper/followups?grid_id={grid}", "今日回访名单"),
        (f"/paper/buildings/{building}/recognition", "光荣榜"),
    ):
        desktop.get(stack.url("portal", path))
        WebDriverWait(desktop, 20).until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
        assert title in desktop.find_element(By.TAG_NAME, "h1").text
        found[path] = serious_violations(desktop)
    assert not any(found.values()), found
    with session_of(stack, desktop) as staff:
        text = pdf_text(staff.get("/paper/agenda.pdf").content)
    assert all(part in text for part in ("每日例会议程", "逾期事项", "今日数据", "会上决定"))


def test_the_supplies_officer_receives_stock_and_accepts_a_transfer(stack, desktop):
    suffix = unique("x")
    item_name = f"医用外科口罩 {suffix[-4:]}"
    station, point = f"D-station-{suffix}", f"D-point-{suffix}"
    with httpx.Client(base_url=stack.url("supplies"), headers=bearer("admin", "admin-1"), timeout=30) as supplies:
        item = supplies.post(
            "/items",
            json={"sku": suffix, "name": item_name, "unit": "盒", "category": "protective", "threshold": 20},
        )
        assert item.status_code == 201, item.text
        item_id = item.json()["item_id"]
        for depot_id, name in ((station, f"社区物资站 {suffix[-4:]}"), (point, f"5栋物资点 {suffix[-4:]}")):
            assert (
                supplies.post(
                    "/depots", json={"depot_id": depot_id, "name": name, "lat": 31.23, "lon": 121.47}
                ).status_code
                == 201
            )

    assert signed_in_as(stack, desktop, "supplies_officer") == "/supplies"
    for depot_id, quantity in ((station, "200"), (point, "3")):
        form = desktop.find_element(By.CSS_SELECTOR, 'form[action="/supplies/receipts"]')
        Select(form.find_element(By.NAME, "depot_id")).select_by_value(depot_id)
        Select(form.find_element(By.NAME, "item_id")).select_by_value(item_id)
        form.find_element(By.NAME, "quantity").send_keys(quantity)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(desktop, 20).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".ok"), "入库已登记"))
    desktop.find_element(By.CSS_SELECTOR, 'form[action="/supplies/rebalance"] button').click()
    WebDriverWait(desktop, 20).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".ok"), "调拨建议"))
    card = next(c for c in desktop.find_elements(By.CSS_SELECTOR, "[data-suggestion]") if item_name in c.text)
    desktop.save_screenshot(str(SCREENSHOTS / "supplies_officer.png"))
    assert not serious_violations(desktop)
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(desktop, 20).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".ok"), "已按建议调拨"))

    with httpx.Client(base_url=stack.url("supplies"), headers=bearer("admin", "admin-1"), timeout=30) as supplies:
        levels = {p["depot_id"]: p for p in supplies.get("/stock", params={"item_id": item_id}).json()["stock"]}
        open_ = [s for s in supplies.get("/stock/transfers/suggestions").json() if s["item_id"] == item_id]
    assert levels[point]["on_hand"] >= 20 and levels[point]["state"] == "ok"
    assert levels[station]["on_hand"] + levels[point]["on_hand"] == 203 and open_ == []


def test_the_dispatcher_plans_a_slot_sees_why_and_assigns_by_hand(stack, desktop):
    building, grid = unique("B"), unique("G")
    resident = register(stack, "周大爷", building, grid, "301", dt.datetime.now(TZ).date())
    suffix = unique("x")[-6:]
    far = f"D-far-{suffix}"
    with httpx.Client(base_url=stack.url("supplies"), headers=bearer("admin", "admin-1"), timeout=30) as supplies:
        created = supplies.post(
            "/depots", json={"depot_id": far, "name": f"城外仓库 {suffix}", "lat": 31.60, "lon": 121.90}
        )
        assert created.status_code == 201, created.text
    with httpx.Client(base_url=stack.url("dispatch"), headers=bearer("admin", "admin-1"), timeout=30) as dispatch:
        volunteer = dispatch.post(
            "/volunteers",
            json={"name": f"志愿者吴磊 {suffix}", "group": "errands", "lat": 31.2310, "lon": 121.4740, "capacity": 5, "phone": "13900000009"},
        )  # fmt: skip
        assert volunteer.status_code == 201, volunteer.text
        volunteer_id = volunteer.json()["volunteer_id"]

        def raised():  # dispatch learns the resident from check-in's event
            response = dispatch.post(
                "/requests", json={"resident_id": resident, "category": "groceries", "details": "大米"}
            )
            return response.json() if response.status_code == 201 else None

        request_id = wait_until(raised, "dispatch to learn the resident")["request_id"]

    assert signed_in_as(stack, desktop, "dispatcher") == "/dispatch"
    form = desktop.find_element(By.CSS_SELECTOR, 'form[action="/dispatch/plan"]')
    Select(form.find_element(By.NAME, "depot_id")).select_by_value(far)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    card = WebDriverWait(desktop, 60).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'li.unplanned[data-request="{request_id}"]'))
    )
    assert card.get_attribute("data-reason") in ("too_late", "out_of_reach")
    assert "离出发的物资点" in card.find_element(By.CSS_SELECTOR, ".why").text
    desktop.execute_script("arguments[0].scrollIntoView()", card)
    desktop.save_screenshot(str(SCREENSHOTS / "dispatcher.png"))
    assert not serious_violations(desktop)
    Select(card.find_element(By.NAME, "volunteer_id")).select_by_value(volunteer_id)
    card.find_element(By.NAME, "note").send_keys("顺路带过去")
    card.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(desktop, 20).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".ok"), "已手动派单"))

    with httpx.Client(base_url=stack.url("dispatch"), headers=bearer("admin", "admin-1"), timeout=30) as dispatch:
        after = dispatch.get(f"/requests/{request_id}").json()
    assert after["volunteer_id"] == volunteer_id and after["status"] == "assigned"
    assert any("顺路带过去" in (h["note"] or "") for h in after["history"])

    # from the default depot it is planned, and its route sheet prints
    desktop.find_element(By.CSS_SELECTOR, 'form[action="/dispatch/plan"] button[type=submit]').click()
    runs = WebDriverWait(desktop, 60).until(EC.presence_of_all_elements_located((By.CSS_SELECTOR, "li.run")))
    assert runs and not desktop.find_elements(By.CSS_SELECTOR, f'li.unplanned[data-request="{request_id}"]')
    runs[0].find_element(By.TAG_NAME, "a").click()
    WebDriverWait(desktop, 20).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "配送路线单"))
    assert not serious_violations(desktop)
