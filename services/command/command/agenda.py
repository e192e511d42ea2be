"""The daily meeting's agenda as Markdown, to print or paste into a group chat."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from common.limits import neutralised  # titles carry other services' text: no links or markup in chat

STAGE_NAMES = {"discovered": "发现 discovered", "responding": "处置中 responding", "resolved": "已解决 resolved",
               "reopened": "重新打开 reopened"}  # fmt: skip


def markdown(agenda: dict[str, Any], tz: ZoneInfo) -> str:
    def at(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%m-%d %H:%M")

    def line(t: dict[str, Any]) -> str:
        late = f" **逾期 overdue ({t['overdue']})**" if t["overdue"] else ""
        level = f" ⬆L{t['escalation_level']}" if t["escalation_level"] else ""
        return (
            f"- `{t['ticket_id']}` [{t['priority']}] {neutralised(t['title'])} — {neutralised(t['owner_name'])} ({t['department']}), "
            f"respond by {at(t['respond_by'])}, resolve by {at(t['resolve_by'])}{late}{level}"
        )

    f = agenda["figures"]
    out = [f"# 每日例会 Daily meeting {agenda['date']}", "", f"As of {at(agenda['as_of'])}.", ""]
    out += [f"## 1. 逾期 Overdue ({len(agenda['overdue'])})", ""]
    out += [line(t) for t in agenda["overdue"]] or ["- none"]
    out += ["", f"## 2. 新增 New since the last meeting ({at(agenda['new_since'])}) ({len(agenda['new'])})", ""]
    out += [line(t) for t in agenda["new"]] or ["- none"]
    out += ["", "## 3. 在办 Open tickets by department and owner", ""]
    if not agenda["open_by_department"]:
        out.append("- none")
    for department in agenda["open_by_department"]:
        out.append(f"### {department['department_name']}")
        for owner in department["owners"]:
            out.append(f"**{owner['owner_name']}** ({len(owner['tickets'])})")
            out += [line(t) for t in owner["tickets"]]
        out.append("")
    checkin = f["checkin"]
    sat = f["satisfaction"]
    out += [
        "## 4. 今日数据 Figures",
        "",
        "| figure | value |",
        "|---|---|",
        f"| check-in completion | {_pct(checkin['completion_rate'])} ({checkin['checked_in']}/{checkin['expected']}, {checkin['missed']} missed) |",
        f"| follow-up resolution | {_pct(f['followups']['resolution_rate'])} ({f['followups']['resolved']}/{f['followups']['opened']}) |",
        f"| median minutes to respond | {_num(f['median_minutes_to_respond'])} |",
        f"| median minutes to resolve | {_num(f['median_minutes_to_resolve'])} |",
        f"| satisfaction | {_num(sat['average'])} from {sat['responses']} ({sat['dissatisfied']} dissatisfied) |",
        f"| open by stage | {', '.join(f'{STAGE_NAMES.get(s, s)} {n}' for s, n in f['open_by_stage'].items())} |",
        f"| overdue / escalations today | {f['overdue']} / {f['escalations']} |",
        "",
    ]
    return "\n".join(out)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"
