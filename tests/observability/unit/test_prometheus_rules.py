"""The alert rules and scrape configurations pass promtool: syntax, and the rules' unit tests
(deploy/prometheus/tests/*.yml), which say when each alert fires and what it says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "deploy/prometheus"
PROMTOOL = shutil.which("promtool")
PORTS = {
    "portal": 8000,
    "checkin": 8001,
    "supplies": 8002,
    "dispatch": 8003,
    "timebank": 8004,
    "command": 8005,
    "messaging": 8006,
}
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=ROOT)


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", *map(str, sorted((PROM / "tests").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-local.yml"])
def test_configs_are_valid(config: str) -> None:
    result = promtool("check", "config", str(PROM / config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_words_for_ops() -> None:
    rules = [
        r for f in (PROM / "rules").glob("*.yml") for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    ]
    alerts = {r["alert"] for r in rules if "alert" in r}
    tested = {
        case["alertname"]
        for f in (PROM / "tests").glob("*.yml")
        for test in yaml.safe_load(f.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")  # a test where it fires, not only where it stays quiet
    }
    assert alerts - tested == set(), "alerts without a firing unit test"
    for rule in rules:
        assert {"summary", "description", "action"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]


def test_both_configs_scrape_every_service_with_a_service_label() -> None:
    for config, host in (("prometheus.yml", None), ("prometheus-local.yml", "127.0.0.1")):
        job = yaml.safe_load((PROM / config).read_text())["scrape_configs"][0]
        targets = {sc["labels"]["service"]: sc["targets"][0] for sc in job["static_configs"]}
        assert targets == {service: f"{host or service}:{port}" for service, port in PORTS.items()}, config
