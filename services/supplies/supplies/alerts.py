"""What time and use cause: alerts re-assessed, batches about to expire, transfers suggested."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from common.events.supplies import StockExpiring, TransferSuggested
from common.outbox import UnitOfWork
from supplies import domain
from supplies.models import StockBatch, TransferSuggestion
from supplies.stock import Position, Stock


class Alerts(Stock):
    async def reassess_all(self) -> int:
        """Announce crossings that time alone causes (stock expiring, consumption moving out
        of the window). Only positions whose state changed are locked and announced."""
        changed = [
            (p.item.item_id, p.depot_id) for p in await self.positions() if p.status.state != p.balance.alert_state
        ]
        announced = 0
        for key in changed:  # one transaction each: a job never holds many locks at once
            async with self.runtime.work() as uow:
                await self._lock(uow, [key])
                announced += await self._announce(uow, [key])
        return announced

    async def warn_expiring(self, *, uow: UnitOfWork | None = None) -> int:
        """`StockExpiring` once per batch, `expiry_warning_days` before it expires."""
        today, now = self.today(), self.clock.now()
        horizon = today + timedelta(days=self.settings.expiry_warning_days)
        async with self.runtime.work(uow) as uow:
            due = (
                (
                    await uow.session.execute(
                        select(StockBatch).where(
                            StockBatch.expiry_warned_at.is_(None),
                            StockBatch.quantity > domain.EPSILON,
                            StockBatch.expires_on.is_not(None),
                            StockBatch.expires_on >= today,
                            StockBatch.expires_on <= horizon,
                        )
                    )
                )
                .scalars()
                .all()
            )
            warned = 0
            for batch in due:
                claimed = await uow.session.execute(
                    update(StockBatch)
                    .where(StockBatch.batch_id == batch.batch_id, StockBatch.expiry_warned_at.is_(None))
                    .values(expiry_warned_at=now)
                )
                if claimed.rowcount:  # another replica did not get there first
                    uow.emit(
                        StockExpiring(
                            item_id=batch.item_id,
                            depot_id=batch.depot_id,
                            batch=batch.batch,
                            expires_on=batch.expires_on,
                            quantity=batch.quantity,
                        )
                    )
                    warned += 1
        return warned

    async def expiring(self, days: int | None = None) -> list[StockBatch]:
        today = self.today()
        horizon = today + timedelta(days=self.settings.expiry_warning_days if days is None else days)
        async with self.runtime.db.session() as session:
            rows = (
                (
                    await session.execute(
                        select(StockBatch)
                        .where(
                            StockBatch.quantity > domain.EPSILON,
                            StockBatch.expires_on.is_not(None),
                            StockBatch.expires_on <= horizon,
                        )
                        .order_by(StockBatch.expires_on, StockBatch.batch_id)
                    )
                )
                .scalars()
                .all()
            )
        return list(rows)

    async def suggest_transfers(self, *, uow: UnitOfWork | None = None) -> list[TransferSuggestion]:
        """Propose moves from depots with surplus days of cover to depots short of them, as
        few as possible, and emit `TransferSuggested` for each new one (once a day)."""
        positions = await self.positions()
        by_item: dict[str, list[Position]] = {}
        for p in positions:
            by_item.setdefault(p.item.item_id, []).append(p)
        today, now = self.today(), self.clock.now()
        created: list[TransferSuggestion] = []
        async with self.runtime.work(uow) as uow:
            for item_id, item_positions in sorted(by_item.items()):
                covers = [
                    domain.DepotCover(
                        p.depot_id,
                        p.level.available,
                        p.level.daily_consumption,
                        p.level.minimum,
                        p.level.lead_time_days,
                    )
                    for p in item_positions
                ]
                by_depot = {p.depot_id: p for p in item_positions}
                moves = domain.suggest_transfers(
                    covers,
                    surplus_factor=self.settings.surplus_cover_factor,
                    target_factor=self.settings.target_cover_factor,
                    min_quantity=self.settings.min_transfer_quantity,
                )
                for move in moves:
                    giver, taker = by_depot[move.from_depot_id].level, by_depot[move.to_depot_id].level
                    reason = (
                        f"{move.to_depot_id} has {_cover(taker)} (lead time {taker.lead_time_days:g} d, minimum "
                        f"{taker.minimum or 0:g}); {move.from_depot_id} has {_cover(giver)}"
                    )
                    result = await uow.session.execute(
                        uow.insert(TransferSuggestion)
                        .values(
                            item_id=item_id,
                            from_depot_id=move.from_depot_id,
                            to_depot_id=move.to_depot_id,
                            quantity=move.quantity,
                            day=today,
                            reason=reason,
                            status="open",
                            created_at=now,
                        )
                        .on_conflict_do_nothing(index_elements=["item_id", "from_depot_id", "to_depot_id", "day"])
                        .returning(TransferSuggestion.suggestion_id)
                    )
                    suggestion_id = result.scalar()
                    if suggestion_id is None:
                        continue  # already proposed today
                    uow.emit(
                        TransferSuggested(
                            item_id=item_id,
                            from_depot_id=move.from_depot_id,
                            to_depot_id=move.to_depot_id,
                            quantity=move.quantity,
                            reason=reason,
                        )
                    )
                    created.append(await uow.session.get(TransferSuggestion, suggestion_id))
        return created

    async def suggestions(self, status: str | None = "open") -> list[TransferSuggestion]:
        query = select(TransferSuggestion).order_by(TransferSuggestion.suggestion_id.desc())
        if status:
            query = query.where(TransferSuggestion.status == status)
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars())


def _cover(level: domain.Level) -> str:
    cover = level.days_of_cover
    return f"{level.available:g} available" + (f", {cover:g} days of cover" if cover is not None else ", no recent use")
