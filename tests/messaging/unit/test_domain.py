"""Messaging's rules with no fixtures: wording, channels, timing, what replies mean."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from common.events.command import TicketEscalated, TicketOpened, TicketResolved
from common.events.dispatch import DeliveryPlanned, RequestAssigned, RequestFulfilled
from messaging import domain
from messaging.catalog import CATALOG, HEALTH_FACTS

SHANGHAI = ZoneInfo("Asia/Shanghai")
WORDING = domain.Wording(SHANGHAI, "https://portal.example")
NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def test_no_template_can_carry_a_health_value():
    # Every fact a template names, and a rendering fed every health fact there is: none
    # reaches the text, whoever the recipient.
    poisoned = {"temperature_c": 38.9, "symptoms": ["咳嗽", "cough"], "fever": True, "tags": ["chronic"],
                "category": "psychological", "details": "抑郁 depression", "title": "Health anomaly 38.9",
                "description": "发烧 fever", "reason": "hospitalised", "note": "took insulin", "text": "胸闷"}  # fmt: skip
    for kind, template in CATALOG.items():
        assert not template.facts & HEALTH_FACTS, f"{kind} names a health fact: {template.facts & HEALTH_FACTS}"
        text = template.render({**poisoned, **{f: "x" for f in template.facts}})
        for value in (
            "38.9",
            "咳嗽",
            "cough",
            "chronic",
            "psychological",
            "抑郁",
            "发烧",
            "hospitalised",
            "insulin",
            "胸闷",
        ):
            assert value not in text, f"{kind} leaks {value!r}"


def test_every_template_is_chinese_first_then_english():
    for kind, template in CATALOG.items():
        zh, en = template.render({f: "1" for f in template.facts}).split("\n")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), kind
        words = en.replace("收到", "").replace("打卡", "")  # the words to reply are quoted as written
        assert not any("\u4e00" <= ch <= "\u9fff" for ch in words), kind


def test_a_health_ticket_reads_as_a_plain_ticket_to_its_owner():
    opened = TicketOpened(ticket_id="T1", kind="fever", priority="urgent", owner="health-duty", department="health",
                          respond_by=NOW, resolve_by=NOW, title="Health anomaly: R1 38.9 °C", resident_id="R1")  # fmt: skip
    [draft] = domain.plan(opened, wording=WORDING)
    assert draft.recipient_id == "health-duty" and draft.urgent
    assert "38.9" not in draft.text() and "fever" not in draft.text() and "R1" not in draft.text()
    assert "待处理工单" in draft.text() and "10:00" in draft.text()


def test_who_hears_of_a_request():
    assigned = RequestAssigned(request_id="Q1", volunteer_id="V1", due_by=NOW, category="medicine")
    drafts = domain.plan(assigned, wording=WORDING, request_resident={"Q1": "R1"})
    assert [(d.kind, d.recipient_id) for d in drafts] == [("volunteer_assigned", "V1"), ("request_assigned", "R1")]
    assert "medicine" not in drafts[0].text() and "https://portal.example/volunteer/tasks/Q1" in drafts[0].text()
    planned = DeliveryPlanned(run_id="RUN1", volunteer_id="V1", stops=["Q1", "Q2"], distance_m=2300, etas=[NOW])
    kinds = [
        (d.kind, d.recipient_id)
        for d in domain.plan(planned, wording=WORDING, request_resident={"Q1": "R1", "Q2": "R2"})
    ]
    assert kinds == [("volunteer_route", "V1"), ("request_planned", "R1"), ("request_planned", "R2")]
    fulfilled = RequestFulfilled(request_id="Q1", volunteer_id="V1", service_minutes=30, resident_id="R1")
    assert [d.kind for d in domain.plan(fulfilled, wording=WORDING)] == ["request_fulfilled"]


def test_feedback_is_asked_only_of_a_ticket_about_a_resident():
    resolved = TicketResolved(ticket_id="T1", stage="resolved", owner="gw-G1", at=NOW)
    about = domain.TicketRef("T1", "complaint", "cmd-duty", resident_id="R1")
    assert [(d.kind, d.recipient_id) for d in domain.plan(resolved, wording=WORDING, ticket=about)] == [
        ("feedback_invitation", "R1")
    ]
    stock = domain.TicketRef("T1", "stock_shortage", "supplies-officer")
    assert domain.plan(resolved, wording=WORDING, ticket=stock) == []
    escalated = TicketEscalated(ticket_id="T1", stage="discovered", owner="cmd-lead", at=NOW, level=2)
    [notice] = domain.plan(escalated, wording=WORDING, ticket=stock)
    assert notice.recipient_id == "cmd-lead" and notice.urgent and "第2级" in notice.text()


def test_channels():
    elderly = domain.Contact("R1", phone="139", tags=("elderly",))
    plain = domain.Contact("R2", phone="138")
    assert domain.channel_for("checkin_reminder", elderly) == "voice"
    assert domain.channel_for("checkin_reminder", plain) == "sms"
    assert domain.channel_for("feedback_invitation", elderly) == "sms"
    assert domain.channel_for("feedback_invitation", domain.Contact("R3")) == "page"  # no phone
    assert domain.channel_for("feedback_invitation", None) == "page"
    assert domain.channel_for("ticket_opened", None) == "chat"
    assert (
        domain.channel_for("feedback_invitation", domain.Contact("R4", phone="137", preferred_channel="voice"))
        == "voice"
    )
    assert (
        domain.channel_for("feedback_invitation", domain.Contact("R5", preferred_channel="sms")) == "page"
    )  # no phone to text
    assert domain.fallback_channel("sms", elderly) == "voice"
    assert domain.fallback_channel("sms", plain) is None
    assert domain.fallback_channel("voice", elderly) is None


@pytest.mark.parametrize(
    ("local", "urgent", "channel", "expected"),
    [
        ("2026-11-21T23:30", False, "sms", "2026-11-22T07:00"),
        ("2026-11-22T06:59", False, "voice", "2026-11-22T07:00"),
        ("2026-11-22T07:00", False, "sms", "2026-11-22T07:00"),
        ("2026-11-21T23:30", True, "sms", "2026-11-21T23:30"),
        ("2026-11-21T23:30", False, "chat", "2026-11-21T23:30"),
        ("2026-11-21T12:00", False, "sms", "2026-11-21T12:00"),
    ],
)
def test_quiet_hours(local, urgent, channel, expected):
    now = datetime.fromisoformat(local).replace(tzinfo=SHANGHAI).astimezone(UTC)
    at = domain.not_before(now, SHANGHAI, time(21, 0), time(7, 0), urgent=urgent, channel=channel)
    assert at.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") == expected


def test_rate_limit_and_backoff():
    assert domain.over_rate_limit(6, 6, urgent=False)
    assert not domain.over_rate_limit(5, 6, urgent=False)
    assert not domain.over_rate_limit(60, 6, urgent=True)
    assert not domain.over_rate_limit(60, 0, urgent=False)
    assert (domain.retry_at(NOW, 3, 30) - NOW).total_seconds() == 120
    assert (domain.retry_at(NOW, 30, 30) - NOW).total_seconds() == 3600


def test_reminder_window():
    assert domain.reminder_due(NOW.replace(hour=1, minute=5), SHANGHAI, time(9), time(10)) is not None
    assert domain.reminder_due(NOW, SHANGHAI, time(9), time(10)) is None  # 10:00: the cutoff has come


@pytest.mark.parametrize(
    ("text", "answering", "answered", "meaning"),
    [
        ("5", "feedback_invitation", False, domain.Feedback(5, None)),
        (" 2，菜还没送到 ", "feedback_invitation", False, domain.Feedback(2, "菜还没送到")),
        ("5", "feedback_invitation", True, domain.AlreadyAnswered()),
        ("6", "feedback_invitation", False, domain.NotUnderstood()),
        ("5", None, False, domain.NotUnderstood()),
        ("收到", "ticket_opened", False, domain.Acknowledge()),
        ("收到", "ticket_escalated", True, domain.AlreadyAnswered()),
        ("收到", "feedback_invitation", False, domain.NotUnderstood()),
        ("打卡 36.5", None, False, domain.CheckIn(36.5)),
        ("打卡36.8℃", "checkin_reminder", False, domain.CheckIn(36.8)),
        ("打卡：37", "feedback_invitation", False, domain.CheckIn(37.0)),
        ("家里没菜了", "checkin_reminder", False, domain.NotUnderstood()),
    ],
)
def test_what_a_reply_means(text, answering, answered, meaning):
    assert domain.interpret(text, answering, answered) == meaning


@pytest.mark.parametrize(
    ("said", "passed_on"),
    [
        ("谢谢小王，辛苦了！", "谢谢小王，辛苦了！"),
        ("  谢谢\n\t小王  ", "谢谢 小王"),
        ("有事打我电话 138-1234-5678 谢谢", "有事打我电话 … 谢谢"),
        ("谢谢<script>alert(1)</script>", "谢谢 script alert(1) /script"),
        ("谢谢，我烧到38.5度了", None),
        ("药很及时，谢谢", None),
        ("thanks, the cough is better", None),
        ("37度的天气还跑来，谢谢", None),
        ("", None),
        ("很" * 100, "很" * 59 + "…"),
    ],
)
def test_what_a_volunteer_may_read_of_the_residents_words(said, passed_on):
    assert domain.neutral_comment(said) == passed_on


def test_a_digest_counts_an_owners_tickets_by_kind_without_health_kinds():
    pending = [domain.Pending("T1", "followup", "normal", NOW), domain.Pending("T2", "fever", "high", NOW),
               domain.Pending("T3", "followup", "normal", NOW)]  # fmt: skip
    draft = domain.digest("gw-1", pending, WORDING)
    assert draft.kind == "ticket_digest" and draft.ticket_id is None and not draft.urgent
    text = draft.text()
    assert "3张新工单" in text and "未打卡随访×2" in text and "待处理工单×1" in text and "fever" not in text
    single = domain.digest("gw-1", pending[:1], WORDING)
    assert single.kind == "ticket_opened" and single.ticket_id == "T1" and "收到" in single.text()


def test_who_a_notice_reaches():
    elderly = domain.Contact("R1", tags=("elderly",), grid_id="G1", building_id="B1", phone="1")
    other = domain.Contact("R2", grid_id="G2", building_id="B2")
    volunteer = domain.Contact("V1", role="volunteer", grid_id="G1", building_id="B1", phone="1")
    b1, g2, old = frozenset({"B1"}), frozenset({"G2"}), frozenset({"elderly"})
    assert domain.in_audience(elderly, b1, frozenset(), frozenset()) and not domain.in_audience(
        other, b1, frozenset(), frozenset()
    )
    assert domain.in_audience(other, b1, g2, frozenset())  # buildings or grids
    assert domain.in_audience(elderly, frozenset(), frozenset(), old) and not domain.in_audience(
        other, frozenset(), g2, old
    )
    assert not domain.in_audience(volunteer, b1, frozenset(), frozenset())
    assert domain.notice_channels(("text", "voice"), elderly) == ["sms", "voice"]
    assert domain.notice_channels(("text", "voice"), other) == ["page"]  # no phone: no call either
    assert domain.reached("delivered", "sms") and domain.reached("replied", "voice")
    assert not domain.reached("delivered", "page") and not domain.reached("accepted", "sms")


def test_replies_to_a_fulfilled_request_and_to_a_notice():
    assert domain.interpret("5 谢谢", "request_fulfilled", False) == domain.RequestFeedback(5, "谢谢")
    assert domain.interpret("4", "request_fulfilled", True) == domain.AlreadyAnswered()
    assert domain.interpret("收到", "notice", False) == domain.NoticeRead()
    assert domain.interpret("什么时候？", "notice", False) == domain.NotUnderstood()
