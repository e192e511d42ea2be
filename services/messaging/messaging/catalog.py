"""Every message FirstLine sends, in one catalog: Chinese first, then English.

A template names the facts it may use; none of them is a health value (temperature,
symptoms, health tags, a request's category or details, a ticket's title), so no message
tells anyone more about a resident's health than that person already knows. The test over
every template holds this.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Facts that are health data by what they hold (DESIGN.md §6): never in a template.
HEALTH_FACTS = frozenset(
    {
        "temperature_c",
        "symptoms",
        "fever",
        "tags",
        "category",
        "details",
        "title",
        "description",
        "reason",
        "note",
        "text",
    }
)


@dataclass(frozen=True)
class Template:
    kind: str
    audience: str  # resident, volunteer, owner
    zh: str
    en: str
    awaits_reply: bool = False  # a reply to this message means something (feedback, 收到, 打卡)

    @property
    def facts(self) -> frozenset[str]:
        """The facts the wording uses."""
        names = set()
        for text in (self.zh, self.en):
            names.update(f for _, f, _, _ in string.Formatter().parse(text) if f)
        return frozenset(names)

    def render(self, facts: Mapping[str, Any]) -> str:
        """Chinese, then English on the next line. Only the template's own facts are read."""
        values = {name: facts.get(name, "") for name in self.facts}
        return f"{self.zh.format(**values)}\n{self.en.format(**values)}"


CATALOG: dict[str, Template] = {
    t.kind: t
    for t in (
        Template(
            "request_assigned", "resident",
            "【第一道防线】您的求助已有志愿者接单，预计{due}前完成。",
            "FirstLine: a volunteer has taken your request; expected by {due}.",
        ),
        Template(
            "request_planned", "resident",
            "【第一道防线】志愿者已出发，预计{eta}到达，请留意门口。",
            "FirstLine: the volunteer is on the way, expected at {eta}.",
        ),
        Template(
            "request_fulfilled", "resident",
            "【第一道防线】您的求助已完成。请回复数字评价志愿者：5 很满意 … 1 很不满意，可附一句话转告志愿者（如：5 谢谢）；有问题请直接回复。",
            "FirstLine: your request has been completed. Reply 1–5 for the volunteer (5 very satisfied), optionally with a few words for them (e.g. \"5 thank you\"); reply if anything is wrong.",
            awaits_reply=True,
        ),
        Template(
            "request_failed", "resident",
            "【第一道防线】志愿者这次未能完成您的求助，我们会尽快重新安排。",
            "FirstLine: the volunteer could not complete your request this time; we will arrange it again soon.",
        ),
        Template(
            "request_cancelled", "resident",
            "【第一道防线】很抱歉，您的求助暂时无法完成，网格员会与您联系。",
            "FirstLine: sorry, your request cannot be served for now; your grid worker will contact you.",
        ),
        Template(
            "feedback_invitation", "resident",
            "【第一道防线】您反映的问题已处理。请回复数字评价：5 很满意，4 满意，3 一般，2 不满意，1 很不满意（1–2 将重新处理）。",
            "FirstLine: your problem has been handled. Reply 1–5 (5 very satisfied, 1 very unsatisfied; 1–2 reopens it).",
            awaits_reply=True,
        ),
        Template(
            "checkin_reminder", "resident",
            "【第一道防线】{name}，您今天还没有健康打卡，请在{cutoff}前完成。可直接回复“打卡 体温”，例如：打卡 36.5",
            "FirstLine: {name}, you have not checked in today; please do before {cutoff}. Reply e.g. \"打卡 36.5\".",
            awaits_reply=True,
        ),
        Template(
            "volunteer_assigned", "volunteer",
            "【第一道防线】您有一个新任务，请在{due}前完成。查看：{link}",
            "FirstLine: you have a new task, due by {due}. Open: {link}",
        ),
        Template(
            "volunteer_route", "volunteer",
            "【第一道防线】您的配送路线已排好：{stops}个站点，约{km}公里。查看：{link}",
            "FirstLine: your delivery run is planned: {stops} stops, about {km} km. Open: {link}",
        ),
        Template(
            "volunteer_thanks", "volunteer",
            "【第一道防线】感谢您的服务！已为您记入{hours}小时时间银行。{comment_zh}",
            "FirstLine: thank you! {hours} hours have been banked for you. {comment_en}",
        ),
        Template(
            "ticket_opened", "owner",
            "【工单】{priority_zh}：{kind_zh}，请在{respond_by}前响应。回复“收到”确认。{link}",
            "Ticket ({priority}): {kind_en}; respond by {respond_by}. Reply \"收到\" to acknowledge. {link}",
            awaits_reply=True,
        ),
        Template(
            "ticket_digest", "owner",
            "【工单】您有{count}张新工单：{summary_zh}。最早须在{respond_by}前响应。{link}",
            "Tickets: {count} new for you ({summary_en}); the first must be answered by {respond_by}. {link}",
        ),
        Template(
            "notice", "resident",
            "【社区通知】{headline_zh}：{body_zh}（回复“收到”表示已知悉）",
            "Notice: {headline_en}: {body_en} (reply \"收到\" to confirm you have read it)",
            awaits_reply=True,
        ),
        Template(
            "ticket_escalated", "owner",
            "【工单升级】第{level}级：{kind_zh}已超时，现由您负责。回复“收到”确认。{link}",
            "Escalated ticket (level {level}): {kind_en} is overdue and now yours. Reply \"收到\" to acknowledge. {link}",
            awaits_reply=True,
        ),
        Template(
            "alert", "owner",
            "【告警{status_zh}】{summary}",
            "Alert ({status}): {action}",
        ),
    )
}  # fmt: skip

PRIORITY_ZH = {"low": "低", "normal": "普通", "high": "高", "urgent": "紧急"}
# Ticket kinds as owners read them. Health kinds (and any kind not listed) read as a plain
# "ticket": the notice travels through staff chat groups that not only health staff read.
KIND_LABELS = {
    "followup": ("未打卡随访", "missed check-in follow-up"),
    "stock_shortage": ("物资短缺", "stock shortage"),
    "reservation_rejected": ("物资预留失败", "reservation rejected"),
    "request_overdue": ("求助超时", "overdue request"),
    "demand_surge": ("需求激增", "demand surge"),
    "sampling_lagging": ("核酸采样滞后", "sampling lagging"),
    "complaint": ("投诉", "complaint"),
    "building_maintenance": ("楼栋维修", "building maintenance"),
    "public_order": ("公共秩序", "public order"),
    "message_reply": ("居民回复待回电", "call back a resident's reply"),
    "feedback_call": ("回访居民评价", "call for a resident's feedback"),
}
DEFAULT_KIND_LABEL = ("待处理工单", "ticket to handle")


def kind_label(kind: str) -> tuple[str, str]:
    return KIND_LABELS.get(kind, DEFAULT_KIND_LABEL)


def render(kind: str, facts: Mapping[str, Any]) -> str:
    return CATALOG[kind].render(facts)
