"""Alertmanager's configuration passes amtool, and routes every alert (critical at once) to
the staff chat group through messaging's authenticated /alerts webhook."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "deploy/prometheus/alertmanager.yml"
AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool (Debian's prometheus-alertmanager package) is not installed"
)


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, cwd=ROOT)


@needs_amtool
def test_the_configuration_passes_amtool() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@needs_amtool
@pytest.mark.parametrize(
    "labels",
    [["severity=critical", "alertname=FirstLineStockOut"], ["severity=warning", "alertname=FirstLineTicketsOverdue"]],
)
def test_every_alert_reaches_the_staff_chat(labels: list[str]) -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0 and result.stdout.strip() == "staff-chat", result.stdout + result.stderr


def test_the_staff_chat_is_messagings_authenticated_webhook_and_prometheus_knows_alertmanager() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    [receiver] = config["receivers"]
    [hook] = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.1:8006/alerts" and hook["send_resolved"] is True
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": "messaging.token"}
    local = yaml.safe_load((ROOT / "deploy/prometheus/prometheus-local.yml").read_text())
    assert local["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9097"]
