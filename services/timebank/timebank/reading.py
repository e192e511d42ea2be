"""Reading the ledger: a member's balance and entries, the leaderboard, the audit."""

from __future__ import annotations

from sqlalchemy import case, func, select

from common.clock import day_bounds
from common.errors import NotFound
from timebank import domain
from timebank.ledger import Ledger
from timebank.models import Account, LedgerEntry, Member, Transfer


class Reading(Ledger):
    async def balance(self, member_id: str) -> dict:
        ids = [domain.member_account(member_id, u) for u in domain.UNITS]
        async with self.runtime.db.session() as session:
            if await session.get(Member, member_id) is None:
                raise NotFound(f"no member {member_id!r}")
            # Derived from the entries, not read from the running balance.
            rows = (
                await session.execute(
                    select(
                        LedgerEntry.account_id,
                        func.coalesce(func.sum(LedgerEntry.amount), 0),
                        func.coalesce(func.sum(case((LedgerEntry.amount > 0, LedgerEntry.amount), else_=0)), 0),
                        func.coalesce(func.sum(case((LedgerEntry.amount < 0, -LedgerEntry.amount), else_=0)), 0),
                    )
                    .where(LedgerEntry.account_id.in_(ids))
                    .group_by(LedgerEntry.account_id)
                )
            ).all()
        totals = {account_id: (int(b), int(i), int(o)) for account_id, b, i, o in rows}
        hours = totals.get(ids[0], (0, 0, 0))
        points = totals.get(ids[1], (0, 0, 0))
        return {
            "member_id": member_id,
            "hours": domain.from_units(hours[0], "hours"),
            "points": points[0],
            "hours_in": domain.from_units(hours[1], "hours"),
            "hours_out": domain.from_units(hours[2], "hours"),
            "points_in": points[1],
            "points_out": points[2],
            "overdraft_hours": domain.from_units(self.member_overdraft, "hours"),
            "available_hours": domain.from_units(hours[0] + self.member_overdraft, "hours"),
        }

    async def ledger(self, member_id: str, unit: str | None, limit: int, before: int | None) -> list[dict]:
        units = [unit] if unit else list(domain.UNITS)
        ids = [domain.member_account(member_id, u) for u in units]
        async with self.runtime.db.session() as session:
            if await session.get(Member, member_id) is None:
                raise NotFound(f"no member {member_id!r}")
            query = (
                select(LedgerEntry, Transfer)
                .join(Transfer, Transfer.transfer_id == LedgerEntry.transfer_id)
                .where(LedgerEntry.account_id.in_(ids))
                .order_by(LedgerEntry.entry_id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(LedgerEntry.entry_id < before)
            rows = (await session.execute(query)).all()
            transfer_ids = [t.transfer_id for _, t in rows]
            others: dict[str, list[str]] = {}
            if transfer_ids:
                for transfer_id, account_id in (
                    await session.execute(
                        select(LedgerEntry.transfer_id, LedgerEntry.account_id).where(
                            LedgerEntry.transfer_id.in_(transfer_ids), LedgerEntry.account_id.not_in(ids)
                        )
                    )
                ).all():
                    others.setdefault(transfer_id, []).append(account_id)
        out = []
        for entry, transfer in rows:
            out.append(
                {
                    "entry_id": entry.entry_id,
                    "transfer_id": transfer.transfer_id,
                    "at": entry.created_at,
                    "kind": transfer.kind,
                    "unit": transfer.unit,
                    "amount": domain.from_units(entry.amount, transfer.unit),
                    "balance_after": domain.from_units(entry.balance_after, transfer.unit),
                    "counterparty": others.get(transfer.transfer_id, []),
                    "reason": transfer.reason,
                    "activity": transfer.activity,
                    "by": transfer.actor,
                    "request_id": transfer.request_id,
                    "redemption_id": transfer.redemption_id,
                    "coupon_id": transfer.coupon_id,
                }
            )
        return out

    async def leaderboard(self, month: str | None) -> dict:
        first, following = domain.month_bounds(month, self.today())
        start, _ = day_bounds(first, self.tz)
        end, _ = day_bounds(following, self.tz)
        async with self.runtime.db.session() as session:
            rows = (
                await session.execute(
                    select(Account.owner_id, Account.unit, func.sum(LedgerEntry.amount))
                    .join(LedgerEntry, LedgerEntry.account_id == Account.account_id)
                    .join(Transfer, Transfer.transfer_id == LedgerEntry.transfer_id)
                    .where(
                        Account.kind == "member",
                        Transfer.kind.in_([domain.EARN, domain.AWARD]),
                        Transfer.created_at >= start,
                        Transfer.created_at < end,
                    )
                    .group_by(Account.owner_id, Account.unit)
                )
            ).all()
            earned: dict[str, dict[str, int]] = {}
            for owner, unit, amount in rows:
                earned.setdefault(owner, {})[unit] = int(amount)
            members = {
                m.member_id: m
                for m in (await session.execute(select(Member).where(Member.member_id.in_(list(earned))))).scalars()
            }
        standings = [
            domain.Standing(member_id, members[member_id].name, figures.get("hours", 0), figures.get("points", 0))
            for member_id, figures in earned.items()
            if member_id in members and members[member_id].public_recognition
        ]
        ranked = domain.leaderboard(standings, self.settings.leaderboard_size)
        return {
            "month": first.strftime("%Y-%m"),
            "entries": [
                {
                    "rank": rank,
                    "member_id": s.member_id,
                    "name": s.name,
                    "hours": domain.from_units(s.hours, "hours"),
                    "points": s.points,
                }
                for rank, s in ranked
            ],
        }

    async def audit(self) -> dict:
        """The ledger's own check: per unit every entry sums to zero, every transfer balances,
        every running balance equals its entries, no account is below its overdraft."""
        async with self.runtime.db.session() as session:
            sums = dict(
                (
                    await session.execute(
                        select(Account.unit, func.sum(LedgerEntry.amount)).join(Account).group_by(Account.unit)
                    )
                ).all()
            )
            balances = dict(
                (await session.execute(select(Account.unit, func.sum(Account.balance)).group_by(Account.unit))).all()
            )
            unbalanced = (
                await session.execute(
                    select(func.count()).select_from(
                        select(LedgerEntry.transfer_id)
                        .group_by(LedgerEntry.transfer_id)
                        .having(func.sum(LedgerEntry.amount) != 0)
                        .subquery()
                    )
                )
            ).scalar_one()
            derived = (
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount).label("total"))
                .group_by(LedgerEntry.account_id)
                .subquery()
            )
            drifted = (
                (
                    await session.execute(
                        select(Account.account_id)
                        .outerjoin(derived, derived.c.account_id == Account.account_id)
                        .where(Account.balance != func.coalesce(derived.c.total, 0))
                    )
                )
                .scalars()
                .all()
            )
            overdrawn = (
                (
                    await session.execute(
                        select(Account.account_id).where(
                            Account.overdraft.is_not(None), Account.balance < -Account.overdraft
                        )
                    )
                )
                .scalars()
                .all()
            )
            counts = dict((await session.execute(select(Account.unit, func.count()).group_by(Account.unit))).all())
        units = {}
        for unit in domain.UNITS:
            units[unit] = {
                "accounts": int(counts.get(unit, 0)),
                "sum_of_entries": domain.from_units(int(sums.get(unit) or 0), unit),
                "sum_of_balances": domain.from_units(int(balances.get(unit) or 0), unit),
            }
        async with self.runtime.db.session() as session:
            pools = dict(
                (await session.execute(select(Account.unit, Account.balance).where(Account.kind == "pool"))).all()
            )
        for unit in domain.UNITS:
            # What the pool has issued and members, merchants and stores now hold.
            units[unit]["outstanding"] = domain.from_units(-int(pools.get(unit, 0)), unit)
        ok = (
            all(int(sums.get(u) or 0) == 0 and int(balances.get(u) or 0) == 0 for u in domain.UNITS)
            and not unbalanced
            and not drifted
            and not overdrawn
        )
        return {
            "balanced": ok,
            "units": units,
            "unbalanced_transfers": int(unbalanced),
            "drifted_accounts": list(drifted),
            "overdrawn_accounts": list(overdrawn),
        }
