"""The command center's part of privacy (docs/privacy.md): the access log of ticket reads,
erasing a resident on `ResidentErased`, and the retention of closed tickets."""

from __future__ import annotations

import json
from datetime import date, timedelta

from aiokafka import ConsumerRecord
from sqlalchemy import func, select, update

from command.models import CheckinFact, KnownResident, Ticket, TicketLog
from common.accesslog import AccessLogEntry
from common.events.checkin import CheckInSubmitted, HealthAnomalyReported, ResidentErased, ResidentRegistered
from common.outbox import OutboxMessage
from conftest import START

DAY = date(2026, 11, 21)
NAME, PHONE = "王芳", "13812345678"


def fever(resident: str) -> HealthAnomalyReported:
    return HealthAnomalyReported(
        resident_id=resident, date=DAY, temperature_c=38.6, symptoms=["cough"], grid_id="G1", building_id="B01",
        fever=True, name=NAME, phone=PHONE, unit="2", room="401", lat=31.2304, lon=121.4737,
    )  # fmt: skip


def registered(resident: str) -> ResidentRegistered:
    return ResidentRegistered(resident_id=resident, community_id="C1", grid_id="G1", building_id="B01", name=NAME,
                              phone=PHONE, unit="2", room="401", lat=31.2304, lon=121.4737)  # fmt: skip


async def count(command, model, *where) -> int:
    async with command.runtime.db.session() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def test_reading_a_tickets_facts_is_logged_for_admins_and_not_for_grid_workers(command):
    await command.deliver(fever("R1"))
    (ticket,) = await command.tickets(headers=command.admin)  # the list shows facts too: a read
    assert ticket["facts"]
    before = await count(command, AccessLogEntry)

    read = await command.client.get(f"/tickets/{ticket['ticket_id']}", headers=command.staff)
    assert read.status_code == 200 and read.json()["facts"]

    log = await command.client.get("/access-log", params={"sub": "cmd-duty"}, headers=command.admin)
    assert log.status_code == 200
    assert [(e["role"], e["record"], e["record_id"], e["resident_id"], e["route"]) for e in log.json()] == [
        ("command", "ticket", ticket["ticket_id"], "R1", "GET /tickets/{ticket_id}")
    ]
    assert await count(command, AccessLogEntry) == before + 1
    worker = command.as_("grid_worker", "gw-G1", grid_ids=["G1"])
    assert (await command.client.get("/access-log", headers=worker)).status_code == 403
    assert (await command.client.get("/access-log", headers=command.staff)).status_code == 403


async def test_an_erased_resident_is_stripped_from_tickets_even_within_one_batch(command):
    erased = ResidentErased(resident_id="R1", erasure_id="E-1", requested_at=START)
    # What the batch learnt about R1 before the erasure is erased with the rest.
    await command.deliver(registered("R1"), fever("R1"), registered("R2"), fever("R2"),
                          CheckInSubmitted(resident_id="R1", date=DAY, temperature_c=38.6, channel="self"), erased)  # fmt: skip

    async with command.runtime.db.session() as session:
        tickets = {t.resident_id: t for t in (await session.execute(select(Ticket))).scalars()}
    kept, stripped = tickets["R2"], tickets["R1"]
    assert kept.facts and kept.lat is not None
    assert (stripped.facts, stripped.description, stripped.action, stripped.lat, stripped.lon) == (
        {},
        None,
        None,
        None,
        None,
    )
    for secret in (NAME, PHONE, "38.6", "cough", "401"):
        assert secret not in stripped.title and secret not in json.dumps(
            stripped.model_dump(mode="json"), ensure_ascii=False
        )
    assert await count(command, KnownResident, KnownResident.resident_id == "R1") == 0
    assert await count(command, KnownResident, KnownResident.resident_id == "R2") == 1
    assert await count(command, CheckinFact, CheckinFact.resident_id == "R1") == 0

    (confirmation,) = await command.outbox("ResidentErasedByCommand")
    assert confirmation["data"]["erasure_id"] == "E-1" and confirmation["data"]["records"]["tickets"] == 1
    assert NAME not in json.dumps(confirmation, ensure_ascii=False)
    assert stripped.shares  # the default rules share a fever with the health department
    for share in stripped.shares:  # each partner's compacted copy of the ticket gets a tombstone
        async with command.runtime.db.session() as session:
            tombstones = await session.execute(
                select(OutboxMessage).where(OutboxMessage.topic == f"partner.{share}.v1", OutboxMessage.value == "")
            )
            assert [r.key for r in tombstones.scalars()] == [stripped.ticket_id]


async def test_retention_deletes_exactly_the_tickets_closed_before_it(command):
    await command.deliver(fever("R1"), fever("R2"), fever("R3"))
    async with command.runtime.db.session() as session:
        ids = {t.resident_id: t.ticket_id for t in (await session.execute(select(Ticket))).scalars()}
        for resident, days in (("R1", 181), ("R2", 179)):  # R3 stays open
            closed = START - timedelta(days=days)
            await session.execute(update(Ticket).where(Ticket.ticket_id == ids[resident])
                                  .values(stage="closed", open_key=None, closed_at=closed))  # fmt: skip
            session.add(TicketLog(ticket_id=ids[resident], action="close", to_stage="closed", by="t", at=closed))
        await session.commit()

    result = await command.runtime.run_job("command-retention")

    assert result["deleted"]["tickets"] == 1 and result["deleted"]["ticket_log"] == 1
    assert await count(command, Ticket, Ticket.ticket_id == ids["R1"]) == 0
    assert await count(command, Ticket) == 2
    assert await count(command, TicketLog, TicketLog.ticket_id == ids["R2"]) == 1
    assert (await command.runtime.run_job("command-retention"))["deleted"] == {}


async def test_a_tombstone_on_the_registry_is_ignored_not_dead_lettered(command):
    tombstone = ConsumerRecord("checkin.residents.v1", 0, 10**9, 0, 0, b"R1", None, None, 2, 0, [])
    await command.runner.handle([tombstone])
    labels = {"service": "command", "consumer": command.runner.consumer.name, "event_type": "tombstone",
              "outcome": "ignored"}  # fmt: skip
    assert command.runtime.registry.get_sample_value("firstline_events_consumed_total", labels) == 1
