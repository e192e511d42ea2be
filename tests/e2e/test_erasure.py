"""Erasing a resident across the stack, through the real broker: a resident with check-ins,
a request in dispatch, a fever ticket in command, a contact and messages in messaging and a
time-bank membership is erased by an admin; every service confirms, and no service's
database holds their name, phone, request details or fever afterwards."""

from __future__ import annotations

import json
import sqlite3
import uuid

from support import wait_for

SERVICES = ("checkin", "dispatch", "command", "messaging", "timebank")


def rows_of(database: str) -> list[tuple[str, str]]:
    """Every row of every table of a service's SQLite database, as (table, text)."""
    with sqlite3.connect(database) as connection:
        tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [
            (table, json.dumps(row, ensure_ascii=False, default=str))
            for table in tables
            for row in connection.execute(f'SELECT * FROM "{table}"')
        ]


async def test_an_erased_resident_leaves_no_personal_data_in_any_service(stack):
    admin = stack.token("admin", "e2e-admin")
    tag = uuid.uuid4().hex[:8]
    name, phone, details = f"抹除{tag}", f"139{int(tag, 16) % 10**8:08d}", f"insulin-{tag}"
    async with (
        stack.client("checkin") as checkin,
        stack.client("dispatch") as dispatch,
        stack.client("command") as command,
        stack.client("timebank") as timebank,
    ):
        body = {"name": name, "phone": phone, "grid_id": "G1", "building_id": "B01", "unit": "1", "room": "1901",
                "tags": ["chronic"]}  # fmt: skip
        registered = await checkin.post("/residents", json=body, headers=admin)
        assert registered.status_code == 201, registered.text
        resident_id = registered.json()["resident_id"]
        resident = stack.token("resident", resident_id)

        checked_in = await checkin.post(
            "/checkins",
            json={"resident_id": resident_id, "temperature_c": 39.4, "symptoms": ["cough"]},
            headers=resident,
        )
        assert checked_in.status_code == 201, checked_in.text

        async def request_raised() -> bool:  # once dispatch has heard of the resident
            answer = await dispatch.post(
                "/requests",
                json={"resident_id": resident_id, "category": "medicine", "details": details},
                headers=resident,
            )
            return answer.status_code == 201

        await wait_for(request_raised, timeout=60, what="dispatch to take the resident's request")

        async def fever_ticket() -> list[dict]:
            tickets = (await command.get("/tickets", params={"limit": 1000}, headers=admin)).json()
            return [t for t in tickets if t["resident_id"] == resident_id and t["facts"]]

        await wait_for(fever_ticket, timeout=60, what="command to open the fever ticket")
        member = await timebank.post("/members", json={"name": name, "kind": "resident"}, headers=resident)
        assert member.status_code == 201, member.text

        def messaging_knows() -> bool:
            return any(name in text for table, text in rows_of(str(stack.var / "messaging.db")) if table == "contact")

        await wait_for(messaging_knows, timeout=60, what="messaging to learn the resident's contact")
        before = {svc: rows_of(str(stack.var / f"{svc}.db")) for svc in SERVICES}
        assert all(any(name in text or phone in text for _, text in rows) for svc, rows in before.items()), [
            svc for svc, rows in before.items() if not any(name in text or phone in text for _, text in rows)
        ]

        refused = await checkin.post(f"/residents/{resident_id}/erase", headers=stack.token("command", "e2e-staff"))
        assert refused.status_code == 403
        erased = await checkin.post(f"/residents/{resident_id}/erase", headers=admin)
        assert erased.status_code == 202, erased.text

        async def confirmed() -> dict | None:
            status = (await checkin.get(f"/residents/{resident_id}/erasure", headers=admin)).json()
            return status if status["complete"] else None

        status = await wait_for(confirmed, timeout=90, what="every service to confirm the erasure")
        assert {s["service"] for s in status["services"]} == set(SERVICES)
        assert all(s["erased_at"] for s in status["services"])
        by_service = {s["service"]: s["records"] for s in status["services"]}
        assert by_service["dispatch"]["requests"] >= 1 and by_service["command"]["tickets"] >= 1
        assert by_service["messaging"]["contacts"] == 1 and by_service["timebank"]["members"] == 1

        for svc in SERVICES:
            for table, text in rows_of(str(stack.var / f"{svc}.db")):
                for secret in (name, phone, details):
                    assert secret not in text, f"{svc}.{table} still holds {secret!r}: {text[:200]}"
                if resident_id in text:
                    assert "39.4" not in text and "cough" not in text, (
                        f"{svc}.{table} still holds the fever: {text[:200]}"
                    )
        tickets = (await command.get("/tickets", params={"limit": 1000}, headers=admin)).json()
        assert [t["facts"] for t in tickets if t["resident_id"] == resident_id] == [{}]
        gone = await checkin.get(f"/residents/{resident_id}", headers=admin)
        assert gone.status_code == 404
