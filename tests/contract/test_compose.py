"""docker-compose.yml, checked without a Docker engine: it parses, every build context and
Dockerfile exists, every service has the environment it needs and a health check, and
required secrets fail fast instead of defaulting."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "portal": 8000,
    "checkin": 8001,
    "supplies": 8002,
    "dispatch": 8003,
    "timebank": 8004,
    "command": 8005,
    "messaging": 8006,
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_infrastructure_with_health_checks():
    services = compose()["services"]
    for name in ("kafka", "postgres", "prometheus", "grafana"):
        assert name in services and "healthcheck" in services[name], name
    kafka = services["kafka"]
    assert kafka["build"]["dockerfile"] == "deploy/kafka/Dockerfile"  # the locked broker of `make up`
    assert all(":?" in v for k, v in kafka["environment"].items() if k.startswith("FIRSTLINE_KAFKA_PASSWORD_"))


def test_every_service_builds_from_its_own_dockerfile_with_what_it_needs():
    services = compose()["services"]
    for name, port in SERVICES.items():
        spec = services[name]
        context = ROOT / spec["build"]["context"]
        dockerfile = context / spec["build"]["dockerfile"]
        assert dockerfile.is_file(), f"{dockerfile} missing"
        assert f"EXPOSE {port}" in dockerfile.read_text()
        env = spec["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_USERNAME"] == name and ":?" in env["KAFKA_PASSWORD"], "its own principal, required"
        assert env["KAFKA_SSL_CAFILE"].startswith("/run/kafka-ca/") and "kafka-ca:/run/kafka-ca:ro" in spec["volumes"]
        assert env[f"{name.upper()}_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["FIRSTLINE_ENV"] == "production"
        assert env["FIRSTLINE_PORTAL_URL"] == "http://portal:8000", "services verify tokens with the portal's JWKS"
        assert "FIRSTLINE_JWT_SECRET" not in env, "no service holds a signing secret"
        # Only the portal faces the network; the services answer on the host's loopback.
        assert spec["ports"] == ([f"{port}:{port}"] if name == "portal" else [f"127.0.0.1:{port}:{port}"])
        assert "healthcheck" in spec
        assert {"kafka", "postgres"} <= set(spec["depends_on"])


def test_required_secrets_fail_fast():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("PORTAL_PUBLIC_URL", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "MESSAGING_GATEWAY_SECRET"):
        assert f"${{{secret}:?" in text, secret


def test_mounted_configuration_exists():
    assert (ROOT / "deploy/postgres/init-databases.sql").is_file()
    assert (ROOT / "deploy/prometheus/prometheus.yml").is_file()
