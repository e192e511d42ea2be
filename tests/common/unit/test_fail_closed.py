"""Outside a loopback development stack a weak or missing secret stops the service at start,
and the env file is found from the project root whatever the working directory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from checkin.settings import CheckinSettings
from common.settings import DEV_JWT_SECRET, PROJECT_ROOT, env_files

STRONG = "k" * 48


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("FIRSTLINE_JWT_SECRET", "FIRSTLINE_ENV", "CHECKIN_HOST", "FIRSTLINE_VAR", "FIRSTLINE_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIRSTLINE_ENV_FILE", str(tmp_path / "absent.env"))


@pytest.mark.parametrize("secret", [DEV_JWT_SECRET, "short", ""])
@pytest.mark.parametrize(("environment", "host"), [("development", "0.0.0.0"), ("production", "127.0.0.1"), ("test", "10.1.2.3")])
def test_a_weak_secret_stops_the_service_outside_a_loopback_development_stack(secret, environment, host):
    with pytest.raises(ValidationError) as refused:
        CheckinSettings(FIRSTLINE_JWT_SECRET=secret, FIRSTLINE_ENV=environment, host=host, database_url="postgresql+asyncpg://x/y")
    assert "FIRSTLINE_JWT_SECRET" in str(refused.value) and "32 characters" in str(refused.value)


def test_the_development_secret_is_allowed_on_loopback_and_a_strong_one_anywhere():
    assert CheckinSettings(host="127.0.0.1").jwt_secret == DEV_JWT_SECRET
    assert CheckinSettings(host="0.0.0.0", FIRSTLINE_JWT_SECRET=STRONG).host == "0.0.0.0"


def test_a_missing_secret_names_what_to_set_at_start(monkeypatch):
    monkeypatch.setenv("CHECKIN_HOST", "0.0.0.0")
    with pytest.raises(ValidationError, match="FIRSTLINE_JWT_SECRET"):
        CheckinSettings()


def test_the_env_file_is_found_from_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("FIRSTLINE_ENV_FILE")
    monkeypatch.chdir(tmp_path)
    assert env_files() == (str(PROJECT_ROOT / "var" / "firstline.env"),)
    assert (PROJECT_ROOT / "libs" / "common" / "common" / "settings.py").is_file()
    monkeypatch.setenv("FIRSTLINE_VAR", str(tmp_path))
    assert env_files() == (str(tmp_path / "firstline.env"),)
