"""The stack as `make up` starts it (deploy/stack.sh, its own state directory, ports
18020-18025, consumer groups of its own), and Debian's Chromium driven as a phone:
360×640, WeChat's user agent, a fresh profile."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from support import bearer, start_groups_at_the_end

ROOT = Path(__file__).resolve().parents[3]
PORTS = {"portal": 18020, "checkin": 18021, "supplies": 18022, "dispatch": 18023, "timebank": 18024, "command": 18025}
CONSUMING = {  # service: the topics its consumer group reads
    "supplies": ["dispatch.events.v1"],
    "dispatch": ["checkin.events.v1", "supplies.events.v1", "timebank.events.v1"],
    "timebank": ["dispatch.events.v1"],
    "command": ["checkin.events.v1", "supplies.events.v1", "dispatch.events.v1", "timebank.events.v1"],
}
WECHAT = (
    "Mozilla/5.0 (Linux; Android 12; M2012K11AC Build/SKQ1.211006.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/107.0.5304.141 Mobile Safari/537.36 XWEB/5043 MMWEBSDK/20221109 MMWEBID/6856 "
    "MicroMessenger/8.0.31.2281(0x28001F37) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)


class Stack:
    def __init__(self, var: Path, kafka: str) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.kafka = kafka
        self.groups = {svc: f"{svc}-browser-{suffix}" for svc in CONSUMING}
        self.env = {
            **os.environ,
            "FIRSTLINE_VAR": str(var),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            # As deployed: services fetch the portal's keys and ended sessions over HTTP.
            "FIRSTLINE_PORTAL_URL": f"http://127.0.0.1:{PORTS['portal']}",
            "FIRSTLINE_JWKS_URL": f"http://127.0.0.1:{PORTS['portal']}/.well-known/jwks.json",
            "FIRSTLINE_REVOCATIONS_URL": f"http://127.0.0.1:{PORTS['portal']}/.well-known/revoked-sessions",
            # Every phone and desk of these journeys signs in from 127.0.0.1; the limit is per address.
            "PORTAL_ATTEMPTS_PER_MINUTE": "1000",
            **{f"{svc.upper()}_PORT": str(port) for svc, port in PORTS.items()},
            **{f"{svc.upper()}_OUTBOX_POLL_INTERVAL_S": "0.2" for svc in PORTS},
            **{f"{svc.upper()}_CONSUMER_GROUP": group for svc, group in self.groups.items()},
        }
        self.var = var

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{PORTS[service]}{path}"

    def admin(self, service: str = "checkin") -> httpx.Client:
        return httpx.Client(base_url=self.url(service), headers=bearer("admin", "admin-1"), timeout=30)


@pytest.fixture(scope="session")
def stack(kafka, tmp_path_factory) -> Iterator[Stack]:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("Debian's Chromium is not installed: run `make browser-install`")
    stack = Stack(tmp_path_factory.mktemp("browser-stack"), kafka)
    # The stack's consumers start at the topics' ends: what these journeys cause, not the broker's history.
    asyncio.run(start_groups_at_the_end(kafka, {group: CONSUMING[svc] for svc, group in stack.groups.items()}))
    try:
        result = subprocess.run(
            [str(ROOT / "deploy/stack.sh"), "up"], env=stack.env, cwd=ROOT, capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.fail(f"deploy/stack.sh up failed:\n{result.stdout}\n{result.stderr}")
        yield stack
    finally:
        subprocess.run([str(ROOT / "deploy/stack.sh"), "down"], env=stack.env, cwd=ROOT, capture_output=True)


@pytest.fixture
def phone() -> Iterator[webdriver.Chrome]:
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
        "--window-size=360,640",
        f"--user-agent={WECHAT}",
        "--lang=zh-CN",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": 360, "height": 640, "pixelRatio": 2.0}, "userAgent": WECHAT}
    )
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
