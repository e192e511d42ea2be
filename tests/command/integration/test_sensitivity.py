"""Property: health data goes only where it belongs. Health events and hand reports carrying
random sentinel values (temperatures, symptoms, names, phones, rooms, health tags, free text)
go through every rule — the defaults and rules an admin writes at random — and through every
reassignment staff may make, escalation, resolution and feedback; no sentinel is then found
on partner.property.v1 or partner.police.v1, in property's, police's or a building lead's HTTP
views, on command.events.v1, in the agenda, in the notices messaging would send, or in the logs.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import date
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.events.checkin import CheckInMissed, HealthAnomalyReported
from common.events.messaging import ReplyNotUnderstood
from common.vocabulary import HEALTH_TAGS
from messaging import domain as messaging
from support import bearer

DAY = date(2026, 11, 21)
HEALTH_TAG_LIST = sorted(HEALTH_TAGS)
WORDING = messaging.Wording(ZoneInfo("Asia/Shanghai"), "http://portal")

token = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=10, max_size=10)
temperature = st.integers(37_301, 42_999).map(lambda t: t / 1000)  # three decimals: found nowhere else
phone = st.integers(10_000_000, 99_999_999).map(lambda n: f"139{n}")
TRIGGERS = ["event:HealthAnomalyReported", "event:CheckInMissed", "event:ReplyNotUnderstood", "category:public_order",
            "category:building_maintenance", "category:complaint", "category:health_concern"]  # fmt: skip
DEPARTMENTS = ["health", "police", "property", "grid", "command"]


def template(names: list[str]) -> str:
    return "x " + " ".join(f"{{{n}}}" for n in names)


# Facts a template may try to name: health values, contact details, free text, and harmless ones.
NAMES = ["temperature_c", "symptoms", "name", "phone", "room", "tags", "description", "text", "category",
         "resident_id", "building_id", "grid_id", "date", "kind"]  # fmt: skip
admin_rule = st.fixed_dictionaries(
    {
        "trigger": st.sampled_from(TRIGGERS),
        "department": st.sampled_from(DEPARTMENTS),
        "title": st.lists(st.sampled_from(NAMES), max_size=2),
        "action": st.lists(st.sampled_from(NAMES), max_size=1),
        "also_share": st.dictionaries(
            st.sampled_from(["property", "police", "health"]), st.lists(st.sampled_from(NAMES), max_size=1), max_size=1
        ),
    }
)
fever = st.fixed_dictionaries(
    {
        "temperature_c": temperature,
        "symptom": token,
        "name": token,
        "phone": phone,
        "room": token,
        "tags": st.lists(st.sampled_from(HEALTH_TAG_LIST), max_size=2, unique=True),
    }
)
missed = st.lists(st.sampled_from(["elderly", "living_alone", *HEALTH_TAG_LIST]), max_size=2, unique=True)
hand_report = st.fixed_dictionaries(
    {
        "category": st.sampled_from(
            ["public_order", "building_maintenance", "complaint", "health_concern", "isolation_difficulty"]
        ),
        "words": token,
        "by": st.sampled_from(["staff", "resident", "grid_worker"]),
    }
)
case = st.fixed_dictionaries(
    {
        "rules": st.lists(admin_rule, max_size=4),
        "fevers": st.lists(fever, min_size=1, max_size=2),
        "missed": st.lists(missed, max_size=2),
        "reports": st.lists(hand_report, min_size=1, max_size=2),
        "reply": st.one_of(st.none(), token),
        "resolution": token,
        "comment": token,
    }
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=case)
async def test_no_sentinel_reaches_property_police_building_leads_command_events_agenda_notices_or_logs(
    command, caplog, example
):
    caplog.set_level(logging.INFO)  # what a service logs (COMMAND_LOG_LEVEL)
    logged_before = len(caplog.records)
    outbox_before = len(await command.outbox())
    run = uuid.uuid4().hex[:6]
    sentinels: set[str] = set()
    partner_sentinels: set[str] = set()  # not health data, but nothing property or police are given

    # Rules an admin might write: whatever is accepted is what routes the problems below.
    for n, rule in enumerate(example["rules"]):
        body = {
            "kind": f"k_{run}_{n}", "department": rule["department"], "owner_by": "department", "priority": "normal",
            "title": template(rule["title"]), "action": template(rule["action"]),
            "also_share": {d: template(names) for d, names in rule["also_share"].items()},
        }  # fmt: skip
        answer = await command.client.put(f"/rules/{rule['trigger']}", json=body, headers=command.admin)
        assert answer.status_code in (200, 422), answer.text

    events = []
    for n, f in enumerate(example["fevers"]):
        sentinels |= {str(f["temperature_c"]), f["symptom"], f["name"], f["phone"], f["room"], *f["tags"]}
        events.append(HealthAnomalyReported(
            resident_id=f"R-{run}-f{n}", date=DAY, temperature_c=f["temperature_c"], symptoms=[f["symptom"]],
            grid_id="G1", building_id="B01", fever=True, name=f["name"], phone=f["phone"], unit="2", room=f["room"],
            tags=f["tags"], lat=31.2304, lon=121.4737,
        ))  # fmt: skip
    for n, tags in enumerate(example["missed"]):
        sentinels |= set(tags) & HEALTH_TAGS
        partner_sentinels |= set(tags)
        events.append(CheckInMissed(resident_id=f"R-{run}-m{n}", date=DAY, consecutive_days=1, grid_id="G1",
                                    building_id="B01", tags=tags))  # fmt: skip
    if example["reply"]:
        sentinels.add(example["reply"])
        events.append(ReplyNotUnderstood(reply_id=f"M-{run}", channel="sms", received_at=command.clock.now(),
                                         sender_id=f"R-{run}-s", text=f"HIV {example['reply']}", grid_id="G1",
                                         building_id="B01"))  # fmt: skip
    await command.deliver(*events)
    reporters = {
        "staff": command.staff,
        "resident": command.as_("resident", f"R-{run}-r"),
        "grid_worker": command.as_("grid_worker", "gw-G1", grid_ids=["G1"]),
    }
    for report in example["reports"]:
        sentinels.add(report["words"])
        body = {"category": report["category"], "description": f"HIV meds ran out {report['words']}"}
        if report["by"] != "resident":
            body |= {"building_id": "B01", "grid_id": "G1"}
        answer = await command.client.post("/tickets", json=body, headers=reporters[report["by"]])
        assert answer.status_code in (201, 422), answer.text

    # Every reassignment staff may make, one after another; then escalation, resolution, feedback.
    people = [p["person_id"] for p in (await command.client.get("/directory/people", headers=command.staff)).json()]
    opened = [e["data"] for e in (await command.outbox())[outbox_before:] if e["type"] == "TicketOpened"]
    mine = [t for t in await command.tickets(limit=1000) if t["ticket_id"] in {o["ticket_id"] for o in opened}]
    partner_sentinels |= {t["resident_id"] for t in mine if t["resident_id"]}
    for ticket in mine:
        path = f"/tickets/{ticket['ticket_id']}"
        for person in people:
            answer = await command.client.post(f"{path}/reassign", json={"owner": person}, headers=command.staff)
            assert answer.status_code in (200, 409, 422), answer.text
    command.clock.advance(hours=3)
    await command.service.escalate_overdue()
    for ticket in mine:
        path = f"/tickets/{ticket['ticket_id']}"
        await command.client.post(f"{path}/acknowledge", json={"note": example["resolution"]}, headers=command.staff)
        await command.client.post(f"{path}/resolve", json={"resolution": example["resolution"]}, headers=command.staff)
        await command.client.post(
            f"{path}/feedback", json={"satisfaction": 2, "comment": example["comment"]}, headers=command.staff
        )
    sentinels |= {example["resolution"], example["comment"]}

    # Where no sentinel may be.
    new = (await command.outbox())[outbox_before:]
    places: dict[str, str] = {}
    for topic in ("partner.property.v1", "partner.police.v1", "command.events.v1"):
        places[topic] = json.dumps([e for e in new if _topic(e) == topic], ensure_ascii=False)
    viewers = {
        "property": bearer("partner", "property-duty", department="property"),
        "police": bearer("partner", "police-duty", department="police"),
        "building lead": bearer("building_lead", "BL-1", building_ids=["B01"]),
    }
    for who, headers in viewers.items():
        seen = [await command.client.get(f"/tickets/{t['ticket_id']}", headers=headers) for t in mine]
        listed = await command.client.get("/tickets", params={"limit": 1000}, headers=headers)
        places[f"{who}'s views"] = json.dumps([r.json() for r in seen] + [listed.json()], ensure_ascii=False)
    agenda = await command.client.get("/agenda", headers=command.staff)
    markdown = await command.client.get("/agenda", params={"format": "markdown"}, headers=command.staff)
    places["the agenda"] = agenda.text + markdown.text
    notices = []
    for e in new:
        if _topic(e) == "command.events.v1":
            event = _event(e)
            ref = messaging.TicketRef(e["data"]["ticket_id"], e["data"].get("kind", "fever"), e["data"]["owner"])
            notices += [d.text() for d in messaging.plan(event, wording=WORDING, ticket=ref)]
    places["notices"] = "\n".join(notices)
    places["logs"] = "\n".join(r.getMessage() for r in caplog.records[logged_before:])

    for place, text in places.items():
        found = [s for s in sorted(sentinels) if s in text]
        if place.startswith(("partner.property", "partner.police", "property", "police")):
            found += [s for s in sorted(partner_sentinels) if s in text]
        assert not found, f"{found} in {place}: …{_around(text, found[0])}…"
    assert "HIV" not in places["partner.police.v1"] + places["police's views"]


def _topic(envelope: dict) -> str:
    name = envelope["type"]
    return {"HealthTicketShared": "partner.health.v1", "PropertyTicketShared": "partner.property.v1",
            "PoliceTicketShared": "partner.police.v1"}.get(name, "command.events.v1")  # fmt: skip


def _event(envelope: dict):
    from common import envelope as ce

    return ce.decode(ce.parse(json.dumps(envelope).encode()))


def _around(text: str, found: str) -> str:
    at = text.index(found)
    return text[max(0, at - 300) : at + 100]
