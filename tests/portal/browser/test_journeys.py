"""Whole journeys in Debian's Chromium at phone size: scan the household's link, check in
in two taps; check in offline and come back online (exactly one check-in); the building
lead checks in for a neighbour. Screenshots of both pages go to docs/screenshots/."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from support import TopicReader, bearer, unique, wait_for, wait_until

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
pytestmark = pytest.mark.e2e


def register(stack, name: str, building: str, room: str) -> str:
    with stack.admin() as checkin:
        response = checkin.post(
            "/residents",
            json={
                "name": name,
                "phone": "13800000000",
                "grid_id": "G1",
                "building_id": building,
                "unit": "1",
                "room": room,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()["resident_id"]


def link(stack, household_id: str) -> str:
    with stack.admin("portal") as portal:
        response = portal.post(f"/admin/households/{household_id}/link", json={})
        assert response.status_code == 200, response.text
        return response.json()["url"]


def status_of(stack, resident_id: str) -> dict:
    with stack.admin() as checkin:
        household = checkin.get(f"/households/{resident_id}").json()
    return next(m for m in household["members"] if m["resident_id"] == resident_id)


def check_in(phone, resident_id: str, temperature: str = "36.5") -> None:
    form = phone.find_element(By.CSS_SELECTOR, f'form.checkin[data-member="{resident_id}"]')
    form.find_element(By.CSS_SELECTOR, f'[data-temperature="{temperature}"]').click()  # tap 1
    form.find_element(By.CSS_SELECTOR, "button[name=none]").click()  # tap 2


def test_scan_the_link_and_check_in_in_two_taps(stack, phone):
    building = unique("B")
    mother = register(stack, "王芳", building, "101")
    register(stack, "李强", building, "101")
    phone.get(link(stack, mother))
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".summary")))
    assert "今天还有 2 人没打卡" in phone.page_source
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    phone.save_screenshot(str(SCREENSHOTS / "household.png"))
    assert phone.execute_script("return document.documentElement.scrollWidth") <= 360  # no sideways scrolling

    check_in(phone, mother)
    wait_until(lambda: status_of(stack, mother)["status"] == "checked_in", "the check-in to reach the check-in service")
    assert status_of(stack, mother)["channel"] == "self"


async def test_a_check_in_made_offline_is_sent_once_when_back_online(stack, phone):
    building = unique("B")
    resident = register(stack, "赵敏", building, "201")
    async with TopicReader(stack.kafka, "checkin.events.v1") as reader:
        phone.get(link(stack, resident))
        WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "form.checkin")))
        phone.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        check_in(phone, resident)
        note = phone.find_element(By.ID, "network")
        wait_until(lambda: "联网后会自动提交" in note.text, "the page to say the check-in is kept")
        assert status_of(stack, resident)["status"] == "missing"

        phone.set_network_conditions(offline=False, latency=0, download_throughput=-1, upload_throughput=-1)
        phone.execute_script("window.dispatchEvent(new Event('online'))")
        wait_until(lambda: status_of(stack, resident)["status"] == "checked_in", "the kept check-in to arrive")
        phone.refresh()  # the page loads again and finds nothing left to send
        WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".summary")))
        assert phone.execute_script("return localStorage.getItem('firstline.checkins')") == "[]"

        def mine() -> list[dict]:
            return [e for e in reader.events("CheckInSubmitted") if e["subject"] == resident]

        async def arrived() -> bool:
            await reader.poll()
            return bool(mine())

        await wait_for(arrived, what="the check-in on checkin.events.v1")
        for _ in range(10):  # a second one, were there one, would follow within these polls
            await reader.poll()
        assert len(mine()) == 1, mine()  # exactly one check-in reached the broker


def test_scan_check_in_with_a_fever_ask_for_groceries_and_rate_the_resolved_ticket(stack, phone):
    building = unique("B")
    resident = register(stack, "陈静", building, "401")
    phone.get(link(stack, resident))
    form = WebDriverWait(phone, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'form.checkin[data-member="{resident}"]'))
    )
    form.find_element(By.NAME, "temperature_c").send_keys("38.2")
    form.find_element(By.CSS_SELECTOR, "button[name=none]").click()
    wait_until(lambda: status_of(stack, resident)["status"] == "needs_attention", "the fever check-in")

    def ticket():
        with httpx.Client(base_url=stack.url("command"), headers=bearer("resident", resident), timeout=10) as command:
            tickets = command.get("/tickets").json()
        return tickets[0] if tickets else None

    opened = wait_until(ticket, "the command center's ticket about the fever", timeout=60)

    phone.get(stack.url("portal", "/home/request"))
    phone.find_element(By.CSS_SELECTOR, 'input[name=category][value="groceries"]').click()
    phone.find_element(By.ID, "details").send_keys("大米和鸡蛋")
    phone.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(phone, 20).until(EC.url_contains("/home/requests"))
    assert "申请已提交" in phone.page_source and "买菜" in phone.page_source

    with stack.admin("command") as command:
        assert command.post(f"/tickets/{opened['ticket_id']}/acknowledge", json={}).status_code == 200
        assert (
            command.post(
                f"/tickets/{opened['ticket_id']}/resolve", json={"resolution": "医生已上门，体温已正常"}
            ).status_code
            == 200
        )
    phone.refresh()
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".feedback")))
    phone.find_element(By.CSS_SELECTOR, '.stars button[value="5"]').click()
    WebDriverWait(phone, 20).until(EC.url_contains("thanks=1"))
    with stack.admin("command") as command:
        assert command.get(f"/tickets/{opened['ticket_id']}").json()["stage"] == "closed"


def test_the_building_lead_checks_in_for_a_neighbour(stack, phone):
    building = unique("B")
    elder = register(stack, "张大爷", building, "301")
    register(stack, "刘阿姨", building, "302")
    with stack.admin("portal") as portal:
        invitation = portal.post(
            "/admin/invitations", json={"role": "building_lead", "sub": unique("lead"), "building_ids": [building]}
        ).json()["url"]
    phone.get(invitation)
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".summary")))
    assert "今天已打卡 0/2 人" in phone.page_source
    phone.save_screenshot(str(SCREENSHOTS / "lead.png"))
    check_in(phone, elder)
    wait_until(lambda: status_of(stack, elder)["status"] == "checked_in", "the lead's check-in")
    assert status_of(stack, elder)["channel"] == "building_lead"


def test_the_household_page_hears_at_once_that_the_lead_checked_in_for_grandma(stack, phone):
    building = unique("B")
    grandma = register(stack, "钱奶奶", building, "801")
    register(stack, "钱小明", building, "801")
    phone.get(link(stack, grandma))
    WebDriverWait(phone, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, f'form.checkin[data-member="{grandma}"]'))
    )
    with stack.admin("portal") as portal:
        invitation = portal.post(
            "/admin/invitations", json={"role": "building_lead", "sub": unique("lead"), "building_ids": [building]}
        ).json()["url"]
    with httpx.Client(timeout=30) as lead:
        lead.get(invitation)  # signed in as the lead (cookie kept)
        done = lead.post(
            stack.url("portal", "/lead/checkins"), data={"resident_id": grandma, "temperature_c": "36.4", "none": "1"}
        )
        assert done.status_code == 303 and "error" not in done.headers["location"]
    status = phone.find_element(By.CSS_SELECTOR, f'.member[data-member="{grandma}"] [data-status]')
    wait_until(lambda: status.text == "已打卡", "the household page to show grandma checked in, without reloading")
    assert not phone.find_elements(By.CSS_SELECTOR, f'form.checkin[data-member="{grandma}"]')


AXE = Path(__file__).resolve().parents[3] / ".tools/browser/node_modules/axe-core/axe.min.js"


def serious_violations(phone) -> list[str]:
    """axe-core's serious and critical findings on the page the phone shows."""
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: run `make browser-install`")
    phone.execute_script(AXE.read_text())
    result = phone.execute_async_script(
        "const done = arguments[arguments.length - 1]; axe.run(document).then(done, e => done({error: String(e)}));"
    )
    assert "error" not in result, result
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_pages_have_no_serious_accessibility_problem(stack, phone):
    building = unique("B")
    resident = register(stack, "孙悦", building, "501")
    phone.get(link(stack, resident))
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".summary")))
    found = {"/home": serious_violations(phone)}
    for path in ("/home/request", "/home/requests"):
        phone.get(stack.url("portal", path))
        found[path] = serious_violations(phone)
    with stack.admin("portal") as portal:
        invitation = portal.post(
            "/admin/invitations", json={"role": "building_lead", "sub": unique("lead"), "building_ids": [building]}
        ).json()["url"]
    phone.delete_all_cookies()
    phone.get(invitation)
    WebDriverWait(phone, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".summary")))
    found["/lead"] = serious_violations(phone)
    phone.delete_all_cookies()
    phone.get(stack.url("portal", "/"))
    found["/"] = serious_violations(phone)
    phone.get(stack.url("portal", "/h/forged.code"))
    found["/h/<forged>"] = serious_violations(phone)
    assert not any(found.values()), found
