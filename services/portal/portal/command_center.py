"""What the command center's pages compute from the services' answers, with no I/O: the
board's columns, the community's outline from its buildings, and the decision prompts the
meeting reads off the figures (a demand surge, a sampling round lagging)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# The board's columns: the stages of an open ticket, in the order work moves.
BOARD_STAGES = ("discovered", "reopened", "responding", "resolved")
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
# What the heat map can show (command's Signal kinds and ticket kinds).
HEAT_KINDS = ("fever", "missed_checkin", "request", "complaint", "isolation_difficulty")
OUTLINE_MARGIN_DEG = 0.0003  # about 30 m around the outermost buildings


def columns(tickets: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Open tickets by stage; within a stage the overdue first, then by the deadline."""
    out: dict[str, list[Mapping[str, Any]]] = {stage: [] for stage in BOARD_STAGES}
    for ticket in tickets:
        if ticket["stage"] in out:
            out[ticket["stage"]].append(ticket)
    for items in out.values():
        items.sort(key=lambda t: (t.get("overdue") is None, str(t["resolve_by"]), t["ticket_id"]))
    return out


def outline(points: Iterable[tuple[float, float]], margin: float = OUTLINE_MARGIN_DEG) -> list[list[float]]:
    """The community's outline as [lat, lon] corners: the convex hull of its buildings,
    each pushed `margin` degrees outward so the buildings sit inside the line. Fewer than
    three distinct buildings give a box around them."""
    unique = sorted(set(points))
    if not unique:
        return []
    if len(unique) < 3:
        lats, lons = [p[0] for p in unique], [p[1] for p in unique]
        s, n, w, e = min(lats) - margin, max(lats) + margin, min(lons) - margin, max(lons) + margin
        return [[s, w], [s, e], [n, e], [n, w]]

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in unique:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(unique):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    c_lat = sum(p[0] for p in hull) / len(hull)
    c_lon = sum(p[1] for p in hull) / len(hull)
    out = []
    for lat, lon in hull:
        d_lat, d_lon = lat - c_lat, lon - c_lon
        length = (d_lat**2 + d_lon**2) ** 0.5 or 1.0
        out.append([lat + margin * d_lat / length, lon + margin * d_lon / length])
    return out


@dataclass(frozen=True)
class Prompt:
    """A decision the figures suggest: the catalog key, its values, and a draft decision."""

    key: str
    values: dict[str, Any]
    ticket_id: str
    building_id: str | None = None


def prompts(tickets: Iterable[Mapping[str, Any]]) -> list[Prompt]:
    """Prompts from open `demand_surge` tickets (dispatch's DemandSurge: this window's count
    against the baseline) and `sampling_lagging` tickets (checkin's SamplingLagging: a
    building's completion in a sampling round). The strongest first."""
    ranked: list[tuple[float, Prompt]] = []
    for t in tickets:
        facts = t.get("facts") or {}
        if t.get("kind") == "demand_surge" and facts.get("count") is not None:
            count, baseline = int(facts["count"]), float(facts.get("baseline") or 0)
            ratio = count / baseline if baseline > 0 else None
            ranked.append(
                (
                    -(ratio or count),
                    Prompt(
                        "board.prompt.surge" if ratio else "board.prompt.surge_new",
                        {"category": facts.get("category", "other"), "ratio": f"{ratio:.1f}" if ratio else "",
                         "count": count, "baseline": f"{baseline:g}"},
                        t["ticket_id"],
                    ),
                )
            )  # fmt: skip
        elif t.get("kind") == "sampling_lagging" and facts.get("completion_rate") is not None:
            rate = float(facts["completion_rate"])
            building = facts.get("building_id") or t.get("building_id") or "?"
            ranked.append(
                (
                    rate - 1.0,
                    Prompt(
                        "board.prompt.sampling",
                        {"building": building, "rate": round(rate * 100), "round": facts.get("round_id", "")},
                        t["ticket_id"],
                        building,
                    ),
                )
            )
    return [p for _, p in sorted(ranked, key=lambda r: r[0])]
