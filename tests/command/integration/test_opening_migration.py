"""The history's "open" entry is told by the ticket (who opened it, its first owner), not by a
row of ticket_log: a ticket opened from an event or by hand writes no such row, its history
still starts with it, and the migration moves the rows of older tickets into the ticket."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text

import command.models
from command.models import Ticket, TicketLog
from common.db import Database
from common.events.checkin import CheckInMissed
from common.migrations import downgrade, pending_changes, upgrade

MIGRATIONS = Path(command.models.__file__).parent / "migrations"
BEFORE = "e09cd1d39cf6"  # the revision before the opening moved into the ticket
AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


async def test_no_open_row_is_written_and_the_history_starts_with_the_opening(command):
    (envelope,) = await command.deliver(
        CheckInMissed(resident_id="R1", date=AT.date(), consecutive_days=1, grid_id="G1", building_id="B01")
    )
    reported = await command.client.post("/tickets", json={"category": "complaint", "description": "lift broken"},
                                         headers=command.as_("resident", "R2"))  # fmt: skip
    assert reported.status_code == 201, reported.text
    async with command.runtime.db.session() as session:
        assert (await session.execute(select(TicketLog))).scalars().all() == []
    missed = next(t for t in await command.tickets() if t["kind"] == "followup")

    reassigned = await command.client.post(f"/tickets/{missed['ticket_id']}/reassign", json={"owner": "gw-G2", "reason": "leave"},
                                           headers=command.staff)  # fmt: skip
    assert reassigned.status_code == 200, reassigned.text
    history = (await command.client.get(f"/tickets/{missed['ticket_id']}", headers=command.staff)).json()["history"]
    assert [(h["action"], h["from_stage"], h["to_stage"], h["by"], h["owner"]) for h in history] == [
        ("open", None, "discovered", "checkin", missed["owner"]),  # the owner it was opened with, not today's
        ("reassign", "discovered", "discovered", "cmd-duty", "gw-G2"),
    ]
    assert history[0]["at"] == missed["opened_at"]
    by_hand = (await command.client.get(f"/tickets/{reported.json()['ticket_id']}", headers=command.staff)).json()
    assert [(h["action"], h["by"], h["note"]) for h in by_hand["history"]] == [("open", "R2", "lift broken")]
    assert envelope.id in missed["source_event_ids"]


def _ticket(ticket_id: str, owner: str) -> dict:
    return {
        "ticket_id": ticket_id, "open_key": f"followup:{ticket_id}", "kind": "followup", "trigger": "event:CheckInMissed",
        "subject_id": ticket_id, "title": "t", "description": "d", "stage": "discovered", "priority": "normal",
        "department": "grid", "owner": owner, "facts": {}, "shares": {}, "source_event_ids": [], "event_count": 1,
        "respond_by": AT, "resolve_by": AT, "opened_at": AT, "updated_at": AT, "escalation_level": 0, "reopen_count": 0,
    }  # fmt: skip


def _log(ticket_id: str, action: str, by: str, owner: str) -> dict:
    return {"ticket_id": ticket_id, "action": action, "from_stage": None if action == "open" else "discovered",
            "to_stage": "discovered", "by": by, "at": AT, "owner": owner}  # fmt: skip


async def test_the_migration_moves_open_rows_into_their_tickets_and_back(database_url):
    db = Database(database_url)
    try:
        await upgrade(db, MIGRATIONS, BEFORE)
        async with db.engine.begin() as conn:  # tickets of the previous code: an "open" row each
            # Only the columns given are inserted: the two new ones are left out.
            await conn.execute(insert(Ticket.__table__), [_ticket("T-1", "gw-G2"), _ticket("T-2", "gw-G1")])
            await conn.execute(insert(TicketLog.__table__), [
                _log("T-1", "open", "checkin", "gw-G1"), _log("T-1", "reassign", "cmd-duty", "gw-G2"), _log("T-2", "open", "R2", "gw-G1"),
            ])  # fmt: skip

        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
            opened = (
                await conn.execute(text("SELECT ticket_id, opened_by, opened_owner FROM ticket ORDER BY ticket_id"))
            ).all()
            assert [tuple(r) for r in opened] == [("T-1", "checkin", "gw-G1"), ("T-2", "R2", "gw-G1")]
            left = (await conn.execute(text("SELECT ticket_id, action FROM ticket_log ORDER BY log_id"))).all()
            assert [tuple(r) for r in left] == [("T-1", "reassign")]

        await downgrade(db, MIGRATIONS, BEFORE)  # and back: one "open" row per ticket again
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT ticket_id, \"by\", owner FROM ticket_log WHERE action = 'open' ORDER BY ticket_id")
                )
            ).all()
            assert [tuple(r) for r in rows] == [("T-1", "checkin", "gw-G1"), ("T-2", "R2", "gw-G1")]
        await upgrade(db, MIGRATIONS)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(pending_changes) == []
    finally:
        await db.dispose()
