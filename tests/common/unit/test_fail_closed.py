"""Outside a loopback development stack a service that was not told whose tokens to trust stops at start,
and the env file is found from the project root whatever the working directory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from checkin.settings import CheckinSettings
from common.settings import PROJECT_ROOT, env_files

PORTAL = "http://portal.community.example:8000"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("FIRSTLINE_PORTAL_URL", "FIRSTLINE_JWKS_URL", "FIRSTLINE_OIDC_ISSUER", "FIRSTLINE_ENV", "CHECKIN_HOST",
                 "FIRSTLINE_VAR", "FIRSTLINE_ENV_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIRSTLINE_ENV_FILE", str(tmp_path / "absent.env"))


@pytest.mark.parametrize(
    ("environment", "host"), [("development", "0.0.0.0"), ("production", "127.0.0.1"), ("test", "10.1.2.3")]
)
def test_no_chosen_token_issuer_stops_the_service_outside_a_loopback_development_stack(environment, host):
    with pytest.raises(ValidationError) as refused:
        CheckinSettings(
            FIRSTLINE_ENV=environment, host=host, database_url="postgresql+asyncpg://x/y", kafka_enabled=False
        )
    assert "FIRSTLINE_PORTAL_URL" in str(refused.value)


def test_the_development_portal_serves_a_loopback_stack_and_a_chosen_one_any_other():
    assert CheckinSettings(host="127.0.0.1").jwks_url == "http://127.0.0.1:8000/.well-known/jwks.json"
    assert CheckinSettings(host="0.0.0.0", FIRSTLINE_PORTAL_URL=PORTAL).jwks_url == PORTAL + "/.well-known/jwks.json"
    assert CheckinSettings(host="0.0.0.0", FIRSTLINE_OIDC_ISSUER="https://sso.example/realms/city").host == "0.0.0.0"


def test_a_missing_issuer_names_what_to_set_at_start(monkeypatch):
    monkeypatch.setenv("CHECKIN_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="FIRSTLINE_PORTAL_URL"):
        CheckinSettings()
    monkeypatch.setenv("FIRSTLINE_PORTAL_URL", PORTAL)
    assert CheckinSettings().host == "0.0.0.0"


def test_the_env_file_is_found_from_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("FIRSTLINE_ENV_FILE")
    monkeypatch.chdir(tmp_path)
    assert env_files() == (str(PROJECT_ROOT / "var" / "firstline.env"),)
    assert (PROJECT_ROOT / "libs" / "common" / "common" / "settings.py").is_file()
    monkeypatch.setenv("FIRSTLINE_VAR", str(tmp_path))
    assert env_files() == (str(tmp_path / "firstline.env"),)
