"""Time-bank figures for Prometheus (`firstline_timebank_...`), computed from this
service's ledger by a periodic refresh: hours credited and redeemed, points, coupons and
members. Labels are transfer kinds, units and statuses: bounded; never a member.
"""

from __future__ import annotations

from sqlalchemy import func, select

from common.metrics import DomainMetrics, Family, Values
from common.runtime import Runtime
from timebank.models import Account, Coupon, Member, Redemption, Transfer
from timebank.service import TimebankService

REFRESH_INTERVAL_S = 10.0
CENTI_HOURS = 100  # hours are kept in 1/100 h


class TimebankMetrics:
    def __init__(self, runtime: Runtime, service: TimebankService) -> None:
        self.runtime = runtime
        self.service = service
        m = self.domain = DomainMetrics(runtime.registry, "timebank")
        self.hours = m.counter(
            "firstline_timebank_hours_total",
            "Hours moved by the ledger, by kind of transfer (earn = credited, redeem = spent, refund)",
            ("kind",),
        )
        self.points = m.counter(
            "firstline_timebank_points_total", "Points moved by the ledger, by kind of transfer", ("kind",)
        )
        self.transfers = m.counter("firstline_timebank_transfers_total", "Ledger transfers, by kind", ("kind",))
        self.members = m.gauge("firstline_timebank_members", "Members by kind", ("kind",))
        self.balances = m.gauge(
            "firstline_timebank_member_balance", "Sum of members' balances (hours or points)", ("unit",)
        )
        self.coupons = m.gauge("firstline_timebank_coupons", "Coupons by status", ("status",))
        self.redemptions = m.gauge(
            "firstline_timebank_redemptions",
            "Redemptions of hours for services, by purpose and status",
            ("purpose", "status"),
        )

    def schedule(self) -> None:
        self.runtime.every("metrics", self.refresh, interval_s=REFRESH_INTERVAL_S)

    async def refresh(self) -> None:
        await self.domain.refresh(self.compute)

    async def compute(self) -> dict[Family, Values]:
        async with self.runtime.db.session() as session:
            transfers = (
                await session.execute(
                    select(
                        Transfer.kind, Transfer.unit, func.count(), func.coalesce(func.sum(Transfer.amount), 0)
                    ).group_by(Transfer.kind, Transfer.unit)
                )
            ).all()
            members = (await session.execute(select(Member.kind, func.count()).group_by(Member.kind))).all()
            balances = (
                await session.execute(
                    select(Account.unit, func.coalesce(func.sum(Account.balance), 0))
                    .where(Account.kind == "member")
                    .group_by(Account.unit)
                )
            ).all()
            coupons = (await session.execute(select(Coupon.status, func.count()).group_by(Coupon.status))).all()
            redemptions = (
                await session.execute(
                    select(Redemption.purpose, Redemption.status, func.count()).group_by(
                        Redemption.purpose, Redemption.status
                    )
                )
            ).all()
        hours: dict[tuple[str], float] = {(k,): 0.0 for k in ("earn", "redeem", "refund")}
        points: dict[tuple[str], float] = {}
        count: dict[tuple[str], float] = {}
        for kind, unit, n, amount in transfers:
            count[(kind,)] = count.get((kind,), 0) + n
            if unit == "hours":
                hours[(kind,)] = hours.get((kind,), 0) + int(amount) / CENTI_HOURS
            else:
                points[(kind,)] = points.get((kind,), 0) + int(amount)
        return {
            self.hours: hours,
            self.points: points,
            self.transfers: count,
            self.members: {(k,): n for k, n in members},
            self.balances: {
                (unit,): int(total) / CENTI_HOURS if unit == "hours" else int(total) for unit, total in balances
            },
            self.coupons: {**{("issued",): 0, ("redeemed",): 0}, **{(s,): n for s, n in coupons}},
            self.redemptions: {(p, s): n for p, s, n in redemptions},
        }
