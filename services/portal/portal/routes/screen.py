"""The figures screen (数据大屏) for a deployment without Grafana: stock against its lines,
check-in and sampling completion by building, follow-up rates (key populations apart), hot
demand categories, overdue tickets and satisfaction, read from the services' own figure
endpoints on the signed-in person's behalf. Command staff and admins see it; the page
reads itself again every PORTAL_SCREEN_REFRESH_S seconds. No name, room or health value
is on it: it hangs on a wall."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from common.auth import Role
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import MaybeSession, message_page, redirect, render, services_of, translator

router = APIRouter()

VIEWERS = (Role.command.value, Role.admin.value)
STOCK_BARS = 16
BUILDING_BARS = 20


async def _read(request: Request, session: PortalSession, service: str, path: str, **params: Any) -> Any:
    """One source of figures; a service that does not answer leaves its panel empty, not the screen."""
    try:
        return await services_of(request).call(session, service, "GET", path, params=params or None)
    except ServiceError:
        return None


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(100 * rate, 1)


def _stock(answer: dict | None) -> dict | None:
    if answer is None:
        return None
    # below the line first, then the nearest to it: what needs a decision is on the left
    positions = sorted(
        answer["stock"],
        key=lambda p: (p["state"] == "ok", p["available"] / p["threshold"] if p["threshold"] else float("inf")),
    )[:STOCK_BARS]
    return {
        "labels": [f"{p['name']}@{p['depot_id']}" for p in positions],
        "available": [p["available"] for p in positions],
        "threshold": [p["threshold"] for p in positions],
        "low": [p["state"] != "ok" for p in positions],
        "below": sum(1 for p in answer["stock"] if p["state"] != "ok"),
        "count": len(answer["stock"]),
    }


def _completion(answer: dict | None) -> dict | None:
    if answer is None:
        return None
    rows = sorted(answer["rows"], key=lambda r: (r["rate"] if r["rate"] is not None else 1.0, r["building_id"]))
    rows = rows[:BUILDING_BARS]
    return {
        "labels": [r["building_id"] for r in rows],
        "rates": [_pct(r["rate"]) for r in rows],
        "done": [r["checked_in"] for r in rows],
        "expected": [r["expected"] for r in rows],
        "rate": _pct(answer["rate"]),
        "checked_in": answer["checked_in"],
        "total": answer["expected"],
    }


def _sampling(answer: list | None) -> dict | None:
    if not answer:
        return None
    latest = answer[0]
    rows = sorted(latest["buildings"], key=lambda b: (b["rate"] if b["rate"] is not None else 1.0, b["building_id"]))
    rows = rows[:BUILDING_BARS]
    line = latest["min_completion_rate"]
    return {
        "name": latest["name"],
        "labels": [b["building_id"] for b in rows],
        "rates": [_pct(b["rate"]) for b in rows],
        "done": [b["sampled"] for b in rows],
        "expected": [b["expected"] for b in rows],
        "line": _pct(line),
        "low": [b["rate"] is not None and b["rate"] < line for b in rows],
    }


def _demand(answer: dict | None, t) -> dict | None:
    if answer is None:
        return None
    top = sorted(answer["totals"].items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    return {
        "labels": [t.messages.get(f"category.{c}", c) for c, _ in top],
        "counts": [n for _, n in top],
        "surges": [t.messages.get(f"category.{s['category']}", s["category"]) for s in answer.get("surges", [])],
    }


def _overdue(answer: list | None, t) -> dict | None:
    if answer is None:
        return None
    by_department = Counter(ticket["department"] for ticket in answer).most_common()
    return {
        "labels": [t.messages.get(f"screen.department.{d}", d) for d, _ in by_department],
        "counts": [n for _, n in by_department],
        "total": len(answer),
    }


async def figures(request: Request, session: PortalSession) -> dict[str, Any]:
    t = translator(request)
    kpis, completion, rounds, stock, demand, overdue = await asyncio.gather(
        _read(request, session, "command", "/kpis"),
        _read(request, session, "checkin", "/stats/completion", by="building"),
        _read(request, session, "checkin", "/sampling/rounds", limit=1),
        _read(request, session, "supplies", "/stock"),
        _read(request, session, "dispatch", "/stats/demand"),
        _read(request, session, "command", "/tickets", overdue="true", limit=1000),
    )
    followups = (kpis or {}).get("followups") or {}
    return {
        "kpis": kpis,
        "followup_rate": _pct(followups.get("resolution_rate")),
        "key_rate": _pct((followups.get("key_population") or {}).get("resolution_rate")),
        "key": followups.get("key_population"),
        "stock": _stock(stock),
        "checkin": _completion(completion),
        "sampling": _sampling(rounds),
        "demand": _demand(demand, t),
        "overdue": _overdue(overdue, t),
        "names": {
            "available": t("screen.stock.available"),
            "threshold": t("screen.stock.threshold"),
            "rate": t("screen.rate"),
            "line": t("screen.sampling.line"),
            "requests": t("screen.demand.requests"),
            "overdue": t("screen.overdue.tickets"),
        },
    }


@router.get("/screen", response_class=HTMLResponse, include_in_schema=False)
async def screen(request: Request, session: MaybeSession):
    if session is None:
        return redirect("/")
    if session.role not in VIEWERS:
        return message_page(request, "errors.forbidden", 403)
    settings = request.app.state.settings
    return render(
        request,
        "screen.html",
        figures=await figures(request, session),
        refresh_s=settings.screen_refresh_s,
        as_of=datetime.now(settings.tz).strftime("%Y-%m-%d %H:%M:%S"),
    )
