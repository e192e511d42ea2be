"""A batch's check-in facts: a big batch of new ones is copied in whole on PostgreSQL; a batch with a fact
already known (a second sweep's event about the same resident and day) is applied in one
transaction all the same, and each fact counts once."""

from __future__ import annotations

import logging
from datetime import date

from common.db import COPY_PAYS_FROM
from common.events.checkin import CheckInMissed, CheckInSubmitted

DAY = date(2026, 11, 21)


def missed(resident: str) -> CheckInMissed:
    return CheckInMissed(resident_id=resident, date=DAY, consecutive_days=1, grid_id="G1", building_id="B01")


async def test_known_facts_in_a_batch_count_once_and_do_not_fail_it(command, caplog):
    first = [missed(f"R{i}") for i in range(COPY_PAYS_FROM)]
    await command.deliver(*first)  # all new: copied on PostgreSQL
    later = [missed(f"R{i}") for i in range(COPY_PAYS_FROM, 2 * COPY_PAYS_FROM)]
    with caplog.at_level(logging.INFO, logger="common.bus"):
        # New events (new ids) about a known fact, beside new facts, in one batch.
        await command.deliver(missed("R0"), *later,
                              CheckInSubmitted(resident_id="X", date=DAY, temperature_c=36.5, symptoms=[], channel="self"),
                              CheckInSubmitted(resident_id="X", date=DAY, temperature_c=36.6, symptoms=[], channel="self"))  # fmt: skip
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]  # the batch's own transaction held
    figures = await command.service.figures(DAY)
    assert (figures["checkin"]["missed"], figures["checkin"]["checked_in"]) == (2 * COPY_PAYS_FROM, 1)
    followups = {t["subject_id"]: t for t in await command.tickets(kind="followup", limit=1000)}
    assert len(followups) == 2 * COPY_PAYS_FROM and followups["R0"]["event_count"] == 2
