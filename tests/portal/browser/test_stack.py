"""The portal in the running stack, as operators and services meet it: the `firstline`
commands, and a signed-out session refused by a service that verifies over HTTP."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from common.auth import operator_token
from portal import domain
from portal.service import link_secret
from support import unique, wait_for

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.e2e


def firstline(stack, *args: str) -> str:
    result = subprocess.run(
        [str(ROOT / ".venv/bin/firstline"), *args], env=stack.env, capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


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


def test_the_operators_commands_print_links_and_write_the_sheet(stack, tmp_path):
    building = unique("B")
    resident = register(stack, "周洁", building, "601")
    url = firstline(stack, "household-link", resident)
    assert url.startswith(stack.url("portal", "/h/"))
    assert httpx.get(url).status_code == 303  # opens the household's page
    renewed = firstline(stack, "household-link", f"H.{building}.1.601", "--renew")
    assert renewed != url and httpx.get(url).status_code == 404

    invitation = firstline(
        stack, "login-link", "--role", "building_lead", "--sub", unique("lead"), "--building-id", building
    )
    assert httpx.get(invitation).headers["location"] == "/lead"

    out = tmp_path / "sheet.pdf"
    assert firstline(stack, "qr", "--building", building, "--out", str(out)) == str(out)
    assert out.read_bytes().startswith(b"%PDF")

    token = firstline(stack, "token", "--role", "admin", "--sub", "ops")
    assert (
        httpx.get(
            stack.url("checkin", f"/residents/{resident}"), headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )
    elsewhere = subprocess.run(
        [str(ROOT / ".venv/bin/firstline"), "token", "--role", "admin", "--sub", "x"],
        capture_output=True,
        text=True,
        env={**stack.env, "FIRSTLINE_KEYS_DIR": str(tmp_path / "no-keys")},
    )
    assert elsewhere.returncode == 1 and "no signing key" in elsewhere.stderr  # only where the key file is


async def test_a_signed_out_session_is_refused_by_the_services_within_seconds(stack):
    building = unique("B")
    resident = register(stack, "吴刚", building, "701")
    url = firstline(stack, "household-link", resident)
    async with httpx.AsyncClient() as phone:
        cookie = (await phone.get(url)).cookies["firstline_session"]
        keys = os.environ["FIRSTLINE_KEYS_DIR"]
        # A token of that session as the portal signs it (as if it had leaked from the portal).
        session_id = domain.digest(link_secret(keys), cookie)
        token = operator_token(
            keys,
            role="resident",
            sub=resident,
            audience="checkin",
            household_id=f"H.{building}.1.701",
            session_id=session_id,
        )
        headers = {"Authorization": f"Bearer {token}"}
        household = stack.url("checkin", f"/households/H.{building}.1.701")
        assert (await phone.get(household, headers=headers)).status_code == 200
        signed_out = await phone.post(stack.url("portal", "/signout"), cookies={"firstline_session": cookie})
        assert signed_out.status_code == 303

        async def refused() -> bool:
            answer = await phone.get(household, headers=headers)
            return answer.status_code == 401 and "session has ended" in answer.text

        await wait_for(refused, timeout=5, what="checkin to refuse the ended session's token")
