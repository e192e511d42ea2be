"""Reading stock: what is below its line, the batches, the ledger and its audit, a reservation."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from common.errors import NotFound
from supplies import domain
from supplies.models import Movement, Reservation, StockBalance, StockBatch
from supplies.stock import Position, Stock


class Reading(Stock):
    async def alerts(self, depot_id: str | None = None) -> list[Position]:
        """What is below its line, most urgent first: the dashboard's red cells."""
        below = [p for p in await self.positions(depot_id=depot_id) if p.status.state != "ok"]
        return sorted(below, key=lambda p: (domain.urgency(p.status), p.item.sku, p.depot_id))

    async def batches(self, item_id: str | None = None, depot_id: str | None = None) -> list[StockBatch]:
        query = select(StockBatch).where(StockBatch.quantity > domain.EPSILON)
        if item_id:
            query = query.where(StockBatch.item_id == item_id)
        if depot_id:
            query = query.where(StockBatch.depot_id == depot_id)
        async with self.runtime.db.session() as session:
            rows = (await session.execute(query)).scalars().all()
        return sorted(
            rows, key=lambda b: (b.item_id, b.depot_id, b.expires_on is None, b.expires_on or date.max, b.batch_id)
        )

    async def ledger(
        self,
        *,
        item_id: str | None = None,
        depot_id: str | None = None,
        request_id: str | None = None,
        limit: int = 200,
    ) -> list[Movement]:
        query = select(Movement).order_by(Movement.movement_id.desc()).limit(limit)
        if item_id:
            query = query.where(Movement.item_id == item_id)
        if depot_id:
            query = query.where(Movement.depot_id == depot_id)
        if request_id:
            query = query.where(Movement.request_id == request_id)
        async with self.runtime.db.session() as session:
            return list((await session.execute(query)).scalars())

    async def audit(self) -> dict:
        """Recompute on-hand from the ledger and compare it with the projections."""
        async with self.runtime.db.session() as session:
            sums = dict(
                ((i, d), float(q))
                for i, d, q in await session.execute(
                    select(Movement.item_id, Movement.depot_id, func.sum(Movement.quantity)).group_by(
                        Movement.item_id, Movement.depot_id
                    )
                )
            )
            batch_sums = dict(
                (b, float(q))
                for b, q in await session.execute(
                    select(Movement.batch_id, func.sum(Movement.quantity)).group_by(Movement.batch_id)
                )
            )
            balances = (await session.execute(select(StockBalance))).scalars().all()
            batches = (await session.execute(select(StockBatch))).scalars().all()
            movements = await session.scalar(select(func.count()).select_from(Movement))
        differences = [
            {
                "item_id": b.item_id,
                "depot_id": b.depot_id,
                "on_hand": b.on_hand,
                "ledger": round(sums.get((b.item_id, b.depot_id), 0.0), 6),
            }
            for b in balances
            if abs(b.on_hand - sums.get((b.item_id, b.depot_id), 0.0)) > 1e-6 or b.on_hand < -domain.EPSILON
        ]
        differences += [
            {
                "batch_id": b.batch_id,
                "item_id": b.item_id,
                "depot_id": b.depot_id,
                "quantity": b.quantity,
                "ledger": round(batch_sums.get(b.batch_id, 0.0), 6),
            }
            for b in batches
            if abs(b.quantity - batch_sums.get(b.batch_id, 0.0)) > 1e-6 or b.quantity < -domain.EPSILON
        ]
        return {
            "balances": len(balances),
            "batches": len(batches),
            "movements": movements,
            "consistent": not differences,
            "differences": differences,
        }

    async def reservation(self, request_id: str) -> Reservation:
        async with self.runtime.db.session() as session:
            reservation = await session.get(Reservation, request_id)
        if reservation is None:
            raise NotFound(f"no reservation for request {request_id!r}")
        return reservation
