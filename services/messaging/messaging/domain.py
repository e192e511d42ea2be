"""Messaging rules: who hears of what, on which channel and when; what a reply means.

Pure: values in, decisions out. No SQL, no HTTP, no clock reads (the time is a parameter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from common.errors import Invalid
from common.events.base import Event
from common.events.command import TicketEscalated, TicketOpened, TicketResolved
from common.events.dispatch import DeliveryFailed, DeliveryPlanned, RequestAssigned, RequestCancelled, RequestFulfilled
from common.events.timebank import HoursCredited
from messaging.catalog import CATALOG, PRIORITY_ZH, kind_label

CHANNELS = ("sms", "voice", "chat", "page")
# Residents reached by a voice call rather than a text (the check-in reminder, and when an SMS fails).
VOICE_TAGS = frozenset({"elderly", "living_alone"})
STATUSES = ("queued", "sent", "accepted", "delivered", "failed", "replied")


@dataclass(frozen=True)
class Contact:
    """Whom a message reaches: a resident (from checkin's events) or a person an admin entered."""

    person_id: str
    role: str = "resident"
    name: str | None = None
    phone: str | None = None
    tags: tuple[str, ...] = ()
    grid_id: str | None = None
    building_id: str | None = None
    preferred_channel: str | None = None
    household_id: str | None = None


@dataclass(frozen=True)
class TicketRef:
    """What messaging remembers of a ticket from command's events."""

    ticket_id: str
    kind: str
    owner: str
    priority: str = "normal"
    resident_id: str | None = None
    grid_id: str | None = None
    building_id: str | None = None


@dataclass(frozen=True)
class Draft:
    """A message to send: its template, recipient and the facts its wording uses."""

    kind: str
    recipient_id: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    ticket_id: str | None = None
    request_id: str | None = None
    urgent: bool = False
    notice_id: str | None = None
    not_before: datetime | None = None  # held until then (a thank-you waiting for the resident's comment)

    def text(self) -> str:
        return CATALOG[self.kind].render(self.facts)


@dataclass(frozen=True)
class Wording:
    """What templates need beyond an event: local time and the portal's address for links."""

    tz: ZoneInfo
    portal_url: str

    def when(self, at: datetime | None) -> str:
        return at.astimezone(self.tz).strftime("%m-%d %H:%M") if at else "尽快 / soon"

    def link(self, path: str) -> str:
        return f"{self.portal_url.rstrip('/')}{path}"


# -- who hears of what -------------------------------------------------------------------


def plan(event: Event, *, wording: Wording, ticket: TicketRef | None = None,
         request_resident: Mapping[str, str] | None = None) -> list[Draft]:  # fmt: skip
    """The messages an event causes. `ticket` is what is known of the event's ticket (for
    command's events); `request_resident` maps request ids to their residents (dispatch's)."""
    residents = request_resident or {}
    match event:
        case RequestAssigned():
            drafts = [Draft("volunteer_assigned", event.volunteer_id,
                            {"due": wording.when(event.due_by), "link": wording.link(f"/volunteer/tasks/{event.request_id}")},
                            request_id=event.request_id)]  # fmt: skip
            if resident := residents.get(event.request_id):
                drafts.append(
                    Draft(
                        "request_assigned", resident, {"due": wording.when(event.due_by)}, request_id=event.request_id
                    )
                )
            return drafts
        case DeliveryPlanned():
            drafts = [Draft("volunteer_route", event.volunteer_id,
                            {"stops": len(event.stops), "km": f"{event.distance_m / 1000:.1f}",
                             "link": wording.link(f"/volunteer/runs/{event.run_id}")})]  # fmt: skip
            etas = list(event.etas) + [None] * (len(event.stops) - len(event.etas))
            for request_id, eta in zip(event.stops, etas, strict=False):
                if resident := residents.get(request_id):
                    drafts.append(Draft("request_planned", resident, {"eta": wording.when(eta)}, request_id=request_id))
            return drafts
        case RequestFulfilled():
            resident = event.resident_id or residents.get(event.request_id)
            return [Draft("request_fulfilled", resident, {}, request_id=event.request_id)] if resident else []
        case DeliveryFailed():
            resident = residents.get(event.request_id)
            return [Draft("request_failed", resident, {}, request_id=event.request_id)] if resident else []
        case RequestCancelled():
            resident = residents.get(event.request_id)
            return [Draft("request_cancelled", resident, {}, request_id=event.request_id)] if resident else []
        case HoursCredited():
            return [Draft("volunteer_thanks", event.member_id, thanks_facts(event.hours), request_id=event.request_id)]
        case TicketOpened():
            zh, en = kind_label(event.kind)
            facts = {"priority": event.priority, "priority_zh": PRIORITY_ZH.get(event.priority, event.priority),
                     "kind_zh": zh, "kind_en": en, "respond_by": wording.when(event.respond_by),
                     "link": wording.link(f"/tickets/{event.ticket_id}")}  # fmt: skip
            return [
                Draft("ticket_opened", event.owner, facts, ticket_id=event.ticket_id, urgent=event.priority == "urgent")
            ]
        case TicketEscalated():
            zh, en = kind_label(ticket.kind if ticket else "")
            facts = {
                "level": event.level,
                "kind_zh": zh,
                "kind_en": en,
                "link": wording.link(f"/tickets/{event.ticket_id}"),
            }
            return [Draft("ticket_escalated", event.owner, facts, ticket_id=event.ticket_id, urgent=True)]
        case TicketResolved():
            if ticket is None or ticket.resident_id is None:
                return []  # no resident to ask (a stock or sampling ticket)
            return [Draft("feedback_invitation", ticket.resident_id, {}, ticket_id=event.ticket_id)]
    return []


def ticket_opened_facts(wording: Wording, ticket_id: str, kind: str, priority: str, respond_by: datetime) -> dict:
    zh, en = kind_label(kind)
    return {"priority": priority, "priority_zh": PRIORITY_ZH.get(priority, priority), "kind_zh": zh, "kind_en": en,
            "respond_by": wording.when(respond_by), "link": wording.link(f"/tickets/{ticket_id}")}  # fmt: skip


@dataclass(frozen=True)
class Pending:
    """A non-urgent ticket waiting for its owner's digest."""

    ticket_id: str
    kind: str
    priority: str
    respond_by: datetime


def digest(owner: str, pending: list[Pending], wording: Wording) -> Draft:
    """One message telling an owner of the tickets opened for them since their last digest:
    a single ticket reads as its own notice (so "收到" acknowledges it); several as a count
    by kind, the earliest deadline and the link to the owner's tickets."""
    if len(pending) == 1:
        p = pending[0]
        return Draft("ticket_opened", owner, ticket_opened_facts(wording, p.ticket_id, p.kind, p.priority, p.respond_by),
                     ticket_id=p.ticket_id)  # fmt: skip
    counts: dict[tuple[str, str], int] = {}
    for p in pending:
        label = kind_label(p.kind)
        counts[label] = counts.get(label, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    facts = {"count": len(pending), "summary_zh": "，".join(f"{zh}×{n}" for (zh, _), n in ordered),
             "summary_en": ", ".join(f"{en} ×{n}" for (_, en), n in ordered),
             "respond_by": wording.when(min(p.respond_by for p in pending)), "link": wording.link("/tickets?mine=1")}  # fmt: skip
    return Draft("ticket_digest", owner, facts)


# -- the volunteer's thank-you and the resident's words ----------------------------------

COMMENT_MAX = 60  # characters of the resident's words the volunteer reads
# Words that would tell the volunteer something of the resident's health: a comment holding
# any of them is not passed on (the thank-you goes without it).
HEALTH_WORDS = re.compile(
    r"发烧|发热|咳|喉|嗓子|头疼|头痛|腹泻|拉肚子|呕吐|乏力|胸闷|气短|呼吸|味觉|嗅觉|阳性|阴性|核酸|抗原|确诊|隔离|"
    r"感染|病|药|医|住院|体温|度数|血压|血糖|症状|不舒服|难受|\d+(?:\.\d+)?\s*(?:度|℃|°)|"
    r"fever|cough|sick|ill\b|flu|covid|positive|negative|symptom|medic|drug|pill|hospital|doctor|temperature|pain",
    re.I,
)
PHONE_LIKE = re.compile(r"\+?\d[\d\s\-]{6,}\d")
CONTROL = re.compile(r"[\x00-\x1f\x7f<>{}\\]")


def neutral_comment(text: str | None) -> str | None:
    """The resident's words as the volunteer may read them: one plain line of at most
    COMMENT_MAX characters, no phone number, and nothing at all if it speaks of health."""
    if not text:
        return None
    line = " ".join(CONTROL.sub(" ", text).split())
    if not line or HEALTH_WORDS.search(line):
        return None
    line = PHONE_LIKE.sub("…", line)
    return line if len(line) <= COMMENT_MAX else line[: COMMENT_MAX - 1] + "…"


def thanks_facts(hours: float, comment: str | None = None) -> dict[str, str]:
    return {
        "hours": f"{hours:g}",
        "comment_zh": f"居民留言：“{comment}”" if comment else "",
        "comment_en": f"The resident wrote: “{comment}”" if comment else "",
    }


# -- notices (宣传) ---------------------------------------------------------------------


def in_audience(contact: Contact, building_ids: frozenset[str], grid_ids: frozenset[str], tags: frozenset[str]) -> bool:
    """A notice reaches residents in any of its buildings or grids (everywhere when it names
    neither) who carry any of its tags (everyone when it names none)."""
    if contact.role != "resident":
        return False
    placed = not (building_ids or grid_ids) or contact.building_id in building_ids or contact.grid_id in grid_ids
    return placed and (not tags or bool(tags.intersection(contact.tags)))


def notice_channels(wanted: tuple[str, ...], contact: Contact) -> list[str]:
    """The channels a notice reaches a resident on: "text" is their channel for a text (SMS,
    or their page without a phone); "voice" a call, when they have a phone."""
    out = []
    if "text" in wanted:
        out.append(channel_for("notice", contact))
    if "voice" in wanted and contact.phone and "voice" not in out:
        out.append("voice")
    return out


def reached(status: str, channel: str) -> bool:
    """A notice message that reached its household: delivered (by the gateway's receipt) or
    replied to. One shown only on the page proves nothing: nobody said they read it."""
    return status == "replied" or (status == "delivered" and channel != "page")


def checkin_reminder(contact: Contact, cutoff: time) -> Draft:
    return Draft(
        "checkin_reminder", contact.person_id, {"name": contact.name or "", "cutoff": cutoff.strftime("%H:%M")}
    )


# -- channels and timing -----------------------------------------------------------------


def channel_for(kind: str, contact: Contact | None) -> str:
    """A person's preferred channel; otherwise staff hear in their chat group, residents and
    volunteers by SMS (a voice call reminds the elderly and those living alone), and someone
    without a phone number on their page."""
    audience = CATALOG[kind].audience
    phone = contact is not None and bool(contact.phone)
    if contact is not None and contact.preferred_channel:
        preferred = contact.preferred_channel
        return preferred if preferred in ("chat", "page") or phone else "page"
    if audience == "owner":
        return "chat"
    if not phone:
        return "page"
    if kind == "checkin_reminder" and VOICE_TAGS.intersection(contact.tags):
        return "voice"
    return "sms"


def fallback_channel(channel: str, contact: Contact | None) -> str | None:
    """An elderly resident's (or one living alone) failed SMS becomes a voice call."""
    if channel == "sms" and contact is not None and contact.phone and VOICE_TAGS.intersection(contact.tags):
        return "voice"
    return None


def not_before(
    now: datetime, tz: ZoneInfo, quiet_start: time, quiet_end: time, *, urgent: bool, channel: str
) -> datetime:
    """When a message may go out: a text or a call waits for the end of the quiet hours,
    unless it is urgent; the chat group and the page are read when people choose."""
    if urgent or channel not in ("sms", "voice") or quiet_start == quiet_end:
        return now
    local = now.astimezone(tz)
    clock = local.time()
    spans_midnight = quiet_start > quiet_end
    quiet = (clock >= quiet_start or clock < quiet_end) if spans_midnight else (quiet_start <= clock < quiet_end)
    if not quiet:
        return now
    end_day = local.date() + timedelta(days=1) if spans_midnight and clock >= quiet_start else local.date()
    return datetime.combine(end_day, quiet_end, tzinfo=tz).astimezone(now.tzinfo)


def over_rate_limit(sent_in_last_hour: int, limit: int, *, urgent: bool) -> bool:
    return not urgent and limit > 0 and sent_in_last_hour >= limit


def retry_at(now: datetime, attempts: int, backoff_s: float) -> datetime:
    """Exponential backoff after `attempts` failed tries, at most an hour."""
    return now + timedelta(seconds=min(backoff_s * 2 ** max(attempts - 1, 0), 3600))


def reminder_due(now: datetime, tz: ZoneInfo, reminder_time: time, cutoff: time) -> date | None:
    """The local date whose check-in reminder is due now (between reminder time and cutoff), if any."""
    local = now.astimezone(tz)
    return local.date() if reminder_time <= local.time() < cutoff else None


# -- what a reply means ------------------------------------------------------------------


@dataclass(frozen=True)
class Feedback:
    satisfaction: int
    comment: str | None


@dataclass(frozen=True)
class Acknowledge:
    pass


@dataclass(frozen=True)
class CheckIn:
    temperature_c: float


@dataclass(frozen=True)
class RequestFeedback:
    """A resident's 1–5 (and words) on a fulfilled request: the words go to the volunteer."""

    satisfaction: int
    comment: str | None


@dataclass(frozen=True)
class NoticeRead:
    """ "收到" after a notice: its household is reached."""


@dataclass(frozen=True)
class AlreadyAnswered:
    """A second answer to a message already answered: nothing more to apply."""


@dataclass(frozen=True)
class NotUnderstood:
    pass


Meaning = Feedback | Acknowledge | CheckIn | RequestFeedback | NoticeRead | AlreadyAnswered | NotUnderstood

RATING = re.compile(r"^\s*([1-5])(?:\s*[,，.。:：\s]\s*(.*))?\s*$", re.S)
CHECK_IN = re.compile(r"^\s*打卡\s*[:：]?\s*(\d{2}(?:\.\d{1,2})?)\s*(?:度|℃|°C)?\s*$")
ACK_WORDS = frozenset({"收到", "收到。", "收到!", "收到！", "ok", "OK", "好的"})


def interpret(text: str, answering: str | None, answered: bool) -> Meaning:
    """What a reply means, given the kind of the message it answers (the last one to this
    person that awaits a reply) and whether that message was answered already."""
    body = (text or "").strip()
    if (m := CHECK_IN.match(body)) is not None:
        return CheckIn(float(m.group(1)))
    if answering == "feedback_invitation" and (m := RATING.match(body)) is not None:
        if answered:
            return AlreadyAnswered()
        comment = (m.group(2) or "").strip() or None
        return Feedback(int(m.group(1)), comment[:500] if comment else None)
    if answering == "request_fulfilled" and (m := RATING.match(body)) is not None:
        if answered:
            return AlreadyAnswered()
        comment = (m.group(2) or "").strip() or None
        return RequestFeedback(int(m.group(1)), comment[:500] if comment else None)
    if answering in ("ticket_opened", "ticket_escalated") and body in ACK_WORDS:
        return AlreadyAnswered() if answered else Acknowledge()
    if answering == "notice" and body in ACK_WORDS:
        return AlreadyAnswered() if answered else NoticeRead()
    return NotUnderstood()


def check_channel(channel: str) -> str:
    if channel not in CHANNELS or channel == "page":
        raise Invalid(f"unknown inbound channel {channel!r}; known: sms, voice, chat")
    return channel


# -- alerts from Alertmanager ------------------------------------------------------------


def alert_drafts(alerts: list[Mapping[str, Any]], recipient: str) -> list[tuple[str, Draft]]:
    """Alertmanager's alerts as messages to the staff group, each keyed by what makes it one
    notice (fingerprint, status, start): Alertmanager repeats a group until it is resolved."""
    out = []
    for alert in alerts:
        status = alert.get("status", "firing")
        annotations = alert.get("annotations") or {}
        labels = alert.get("labels") or {}
        facts = {"status": status, "status_zh": "" if status == "firing" else "已解除",
                 "summary": annotations.get("summary") or labels.get("alertname", "alert"),
                 "action": annotations.get("action") or annotations.get("description") or ""}  # fmt: skip
        key = f"alert:{alert.get('fingerprint') or labels.get('alertname')}:{status}:{alert.get('startsAt', '')}"
        out.append((key, Draft("alert", recipient, facts, urgent=labels.get("severity") == "critical")))
    return out
