"""Command-center figures for Prometheus (`firstline_command_...`), computed from this
service's tickets by a periodic refresh: tickets by stage, department and priority, what is
overdue, time to respond and to resolve, satisfaction, and where problems are (H3 cells).
Tickets opened, transitions and escalations are counted where they happen (intake.py,
lifecycle.py, escalation.py).
Labels are kinds, stages, departments, priorities, grids and map cells: bounded; never a
resident or an owner. Health kinds are counted per grid, never per cell: per-cell health
figures are for signed-in staff through the heat map, k-anonymous (reading.heatmap).
"""

from __future__ import annotations

from datetime import timedelta

import h3
from sqlalchemy import func, select

from command.domain import ACTIVE_STAGES
from command.models import Signal, Ticket
from command.reading import health_kinds
from command.service import CommandService
from common.metrics import DomainMetrics, Family, Values
from common.runtime import Runtime

REFRESH_INTERVAL_S = 10.0
RECENT = timedelta(hours=24)  # the window of the averages and of the heat map


class CommandMetrics:
    def __init__(self, runtime: Runtime, service: CommandService) -> None:
        self.runtime = runtime
        self.service = service
        m = self.domain = DomainMetrics(runtime.registry, "command")
        self.tickets = m.gauge(
            "firstline_command_tickets",
            "Tickets by kind, stage, department and priority",
            ("kind", "stage", "department", "priority"),
        )
        self.overdue = m.gauge(
            "firstline_command_tickets_overdue",
            "Active tickets past a deadline: breach=respond (not acknowledged in time) or resolve",
            ("kind", "department", "priority", "breach"),
        )
        self.respond_seconds = m.gauge(
            "firstline_command_time_to_respond_seconds_avg",
            "Average time from opening to acknowledgement, tickets acknowledged in the last 24 h",
            ("kind",),
        )
        self.resolve_seconds = m.gauge(
            "firstline_command_time_to_resolve_seconds_avg",
            "Average time from opening to resolution, tickets resolved in the last 24 h",
            ("kind",),
        )
        self.satisfaction = m.gauge(
            "firstline_command_satisfaction_avg",
            "Average satisfaction (1-5) of the feedback given, by department",
            ("department",),
        )
        self.feedback = m.counter(
            "firstline_command_feedback_total", "Feedback given, by satisfaction score", ("satisfaction",)
        )
        self.cells = m.gauge(
            "firstline_command_signals_by_cell",
            "Located problems in the last 24 h per H3 cell, with the cell's centre, health kinds left out",
            ("h3_cell", "lat", "lon", "kind"),
        )
        self.health_by_grid = m.gauge(
            "firstline_command_health_signals_by_grid",
            "Located health problems (fevers, health concerns) in the last 24 h per grid: no finer than a grid",
            ("grid_id", "kind"),
        )

    def schedule(self) -> None:
        self.runtime.every("metrics", self.refresh, interval_s=REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        await self.domain.refresh(self.compute)

    async def compute(self) -> dict[Family, Values]:
        now = self.service.clock.now()
        since = now - RECENT
        T = Ticket
        async with self.runtime.db.session() as session:
            by_stage = (
                await session.execute(
                    select(T.kind, T.stage, T.department, T.priority, func.count()).group_by(
                        T.kind, T.stage, T.department, T.priority
                    )
                )
            ).all()
            active = (
                await session.execute(
                    select(T.kind, T.department, T.priority, T.respond_by, T.resolve_by, T.acknowledged_at).where(
                        T.stage.in_(ACTIVE_STAGES)
                    )
                )
            ).all()
            acknowledged = (
                await session.execute(select(T.kind, T.opened_at, T.acknowledged_at).where(T.acknowledged_at >= since))
            ).all()
            resolved = (
                await session.execute(select(T.kind, T.opened_at, T.resolved_at).where(T.resolved_at >= since))
            ).all()
            satisfaction = (
                await session.execute(
                    select(T.department, func.avg(T.satisfaction))
                    .where(T.satisfaction.is_not(None))
                    .group_by(T.department)
                )
            ).all()
            feedback = (
                await session.execute(
                    select(T.satisfaction, func.count()).where(T.satisfaction.is_not(None)).group_by(T.satisfaction)
                )
            ).all()
            health = list(health_kinds(await self.service.config()))
            cells = (
                await session.execute(
                    select(Signal.h3_cell, Signal.kind, func.count())
                    .where(Signal.at >= since, Signal.kind.not_in(health))
                    .group_by(Signal.h3_cell, Signal.kind)
                )
            ).all()
            by_grid = (
                await session.execute(
                    select(Ticket.grid_id, Signal.kind, func.count())
                    .join(Ticket, Ticket.ticket_id == Signal.ticket_id, isouter=True)
                    .where(Signal.at >= since, Signal.kind.in_(health))
                    .group_by(Ticket.grid_id, Signal.kind)
                )
            ).all()

        overdue: dict[tuple[str, str, str, str], float] = {}
        for kind, department, priority, respond_by, resolve_by, acknowledged_at in active:
            for breach in ("respond", "resolve"):  # 0 for what is active and on time: "none late" is a figure too
                overdue.setdefault((kind, department, priority, breach), 0)
            breach = (
                "resolve" if resolve_by < now else "respond" if acknowledged_at is None and respond_by < now else None
            )
            if breach:
                overdue[(kind, department, priority, breach)] += 1
        heat: dict[tuple[str, str, str, str], float] = {}
        for cell, kind, count in cells:
            lat, lon = h3.cell_to_latlng(cell)
            heat[(cell, f"{lat:.5f}", f"{lon:.5f}", kind)] = count
        return {
            self.tickets: {(k, s, d, p): n for k, s, d, p, n in by_stage},
            self.overdue: overdue,
            self.respond_seconds: _averages(acknowledged),
            self.resolve_seconds: _averages(resolved),
            self.satisfaction: {(d,): float(avg) for d, avg in satisfaction},
            self.feedback: {(str(s),): n for s, n in feedback},
            self.cells: heat,
            self.health_by_grid: {(grid or "unknown", kind): n for grid, kind, n in by_grid},
        }


def _averages(rows) -> dict[tuple[str], float]:
    spans: dict[str, list[float]] = {}
    for kind, start, end in rows:
        spans.setdefault(kind, []).append((end - start).total_seconds())
    return {(kind,): sum(s) / len(s) for kind, s in spans.items()}
