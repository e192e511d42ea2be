"""What the grid worker's and the volunteer's pages show, shaped from the services' answers:
follow-up cards with their tickets and arrangements, the three-step conversation's facts,
the run's map drawn from the stops' coordinates, and the month's hours and points.

Pure functions of values (no I/O, no clock): the services decide, these only arrange."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

# Tickets a grid worker closes after a call; other kinds (a fever ticket is the health
# department's) are only acknowledged: the call is the community's response, not the cure.
GRID_KINDS = frozenset({"followup", "message_reply", "feedback_call", "isolation_difficulty"})
WORKABLE = frozenset({"discovered", "reopened", "responding"})
ARRANGED = frozenset({"assigned", "planned"})
FEVER_C = 37.3  # DESIGN.md §4


def when(at: str | datetime | None) -> datetime | None:
    if at is None or isinstance(at, datetime):
        return at
    return datetime.fromisoformat(at)


def day_word(day: date, today: date) -> tuple[str, dict[str, Any]]:
    """The catalog key and values that name a day as people say it: today, tomorrow, 11月23日."""
    if day == today:
        return "grid.day.today", {}
    if (day - today).days == 1:
        return "grid.day.tomorrow", {}
    return "grid.day.date", {"month": day.month, "day": day.day}


@dataclass
class Arrangement:
    """A request of the resident's on its way: when, who, what."""

    category: str
    volunteer_name: str | None
    day: date
    start_hour: int | None  # a window's hours, when the request has one
    end_hour: int | None
    by_time: str | None  # else: due by this time of day (HH:MM)


def arrangement(request: dict, tz: tzinfo) -> Arrangement:
    start, end = when(request.get("window_start")), when(request.get("window_end"))
    if start and end:
        start, end = start.astimezone(tz), end.astimezone(tz)
        end_hour = end.hour + (1 if end.minute else 0)
        return Arrangement(request["category"], request.get("volunteer_name"), start.date(), start.hour, end_hour, None)
    due = when(request["due_by"]).astimezone(tz)
    return Arrangement(request["category"], request.get("volunteer_name"), due.date(), None, None, f"{due:%H:%M}")


@dataclass
class Card:
    """One resident on the follow-up list, with what the worker needs for the call."""

    item: dict
    situation: str  # fever, symptoms, missed
    tickets: list[dict] = field(default_factory=list)
    own_words: str | None = None
    arranged: Arrangement | None = None

    @property
    def resident_id(self) -> str:
        return self.item["resident_id"]

    @property
    def state(self) -> str:
        """todo (nothing done yet), working (acknowledged: e.g. not reached, retry), done."""
        if not self.tickets:
            return "todo"
        if all(t["stage"] in ("resolved", "closed") for t in self.tickets):
            return "done"
        if any(t["stage"] in ("discovered", "reopened") for t in self.tickets):
            return "todo"
        return "working"

    @property
    def room(self) -> str:
        return self.item.get("address") or ""


def situation(item: dict) -> str:
    temperature = item.get("last_temperature_c")
    if item.get("anomaly"):
        if temperature is not None and temperature >= FEVER_C and item.get("last_checkin_date"):
            return "fever"
        return "symptoms"
    return "missed"


def _words(tickets: list[dict], requests: list[dict]) -> str | None:
    """The resident's own words, the latest the system holds: a reply by SMS that no rule
    understood, a problem they reported themselves, or the note on a request (a grid
    worker's page asks for the resident's words there)."""
    for ticket in tickets:
        reported = ticket.get("reported_by") == ticket.get("resident_id") and ticket.get("description")
        said = (ticket.get("facts") or {}).get("text") or reported
        if said:
            return " ".join(str(said).split())[:200]
    for request in sorted(requests, key=lambda r: r["created_at"], reverse=True):
        if request.get("details"):
            return " ".join(request["details"].split())[:200]
    return None


def cards(followups: list[dict], tickets: list[dict], requests: list[dict], tz: tzinfo) -> list[Card]:
    """The follow-up list in check-in's order, each with the resident's tickets, own words
    and the arrangement on its way (the soonest)."""
    by_resident: dict[str, list[dict]] = {}
    for ticket in tickets:
        if ticket.get("resident_id"):
            by_resident.setdefault(ticket["resident_id"], []).append(ticket)
    asked: dict[str, list[dict]] = {}
    for request in requests:
        asked.setdefault(request["resident_id"], []).append(request)
    out = []
    for item in followups:
        theirs = by_resident.get(item["resident_id"], [])
        wanted = asked.get(item["resident_id"], [])
        coming = sorted((r for r in wanted if r["status"] in ARRANGED), key=lambda r: when(r["due_by"]))
        out.append(
            Card(
                item=item,
                situation=situation(item),
                tickets=theirs,
                own_words=_words(theirs, wanted),
                arranged=arrangement(coming[0], tz) if coming else None,
            )
        )
    return out


@dataclass(frozen=True)
class Step:
    """What the route does to one ticket for an outcome: acknowledge, then maybe resolve."""

    ticket_id: str
    acknowledge: bool
    resolve: bool


def steps(tickets: list[dict], outcome: str) -> list[Step]:
    """reached (fine, or needs help: a request was raised) resolves the grid's tickets and
    acknowledges the others; not reached acknowledges (the call is on record, retry later)."""
    planned = []
    for ticket in tickets:
        if ticket["stage"] not in WORKABLE:
            continue
        ack = ticket["stage"] in ("discovered", "reopened")
        close = outcome in ("fine", "help") and ticket["kind"] in GRID_KINDS
        if ack or close:
            planned.append(Step(ticket["ticket_id"], ack, close))
    return planned


# -- the volunteer's run ------------------------------------------------------------------------


@dataclass(frozen=True)
class MapPoint:
    n: int  # 0: the depot; then the stops in order
    x: float
    y: float
    status: str | None


@dataclass(frozen=True)
class RunMap:
    width: int
    height: int
    points: list[MapPoint]
    path: str  # the polyline: depot, stops in order, back to the depot
    outbound: str  # depot to the last stop (drawn solid)
    back: str  # the last stop back to the depot (drawn dashed)
    scale_px: float  # a scale bar of `scale_m` metres
    scale_m: int


def run_map(run: dict, width: int = 320, height: int = 240, pad: int = 24) -> RunMap:
    """The run drawn from coordinates alone (no tiles): an equirectangular projection around
    the run, north up, fitted into the box with the same scale on both axes."""
    places = [(run["depot_lat"], run["depot_lon"], None)] + [
        (s["lat"], s["lon"], s.get("status")) for s in run["stops"]
    ]
    lat0 = sum(p[0] for p in places) / len(places)
    squeeze = math.cos(math.radians(lat0))
    xs = [lon * squeeze for _, lon, _ in places]
    ys = [-lat for lat, _, _ in places]
    fit = min((width - 2 * pad) / max(max(xs) - min(xs), 1e-9), (height - 2 * pad) / max(max(ys) - min(ys), 1e-9))
    scale = min(fit, 111_320 * 2)  # px per degree; at most 2 px a metre, so one building's stops stay together
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    points = [
        MapPoint(n, round(width / 2 + (x - cx) * scale, 1), round(height / 2 + (y - cy) * scale, 1), status)
        for n, (x, y, (_, _, status)) in enumerate(zip(xs, ys, places, strict=True))
    ]
    at = [f"{p.x},{p.y}" for p in points]
    path = " ".join([*at, at[0]])
    metres_per_px = 111_320 / scale  # one degree of latitude is ~111.32 km
    target = metres_per_px * width / 4
    scale_m = next((m for m in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if m >= target), 10_000)
    return RunMap(
        width, height, points, path, " ".join(at), f"{at[-1]} {at[0]}", round(scale_m / metres_per_px, 1), scale_m
    )


def geo_uri(lat: float, lon: float, label: str) -> str:
    """A navigation link the phone's own map app opens (RFC 5870, with the label as a query)."""
    safe = "".join(ch for ch in label if ch not in "()&#?")
    return f"geo:{lat:.6f},{lon:.6f}?q={lat:.6f},{lon:.6f}({safe})"


def month_totals(entries: list[dict], month_start: datetime) -> dict[str, float]:
    """Hours and points earned since the month began (credits only: spending is not effort)."""
    totals = {"hours": 0.0, "points": 0.0}
    for entry in entries:
        if when(entry["at"]) < month_start or entry["amount"] <= 0 or entry["unit"] not in totals:
            continue
        totals[entry["unit"]] += entry["amount"]
    return {"hours": round(totals["hours"], 2), "points": int(totals["points"])}
