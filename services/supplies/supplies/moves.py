"""Moves in the ledger: receipts, issues to people, transfers between depots, adjustments."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import update

from common.errors import Conflict, Invalid, NotFound
from common.outbox import UnitOfWork
from supplies import domain
from supplies.models import Movement, StockBatch, TransferSuggestion
from supplies.stock import UNBATCHED, Stock


class Moves(Stock):
    async def receive(
        self,
        by: str,
        *,
        depot_id: str,
        item_id: str,
        quantity: float,
        batch: str | None = None,
        expires_on: date | None = None,
        source: str | None = None,
        note: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> Movement:
        quantity = domain.check_quantity(quantity)
        if source is not None:
            domain.check_choice(source, domain.SOURCES, "source")
        async with self.runtime.work(uow) as uow:
            item, _ = await self._known(uow, item_id, depot_id)
            domain.check_receipt(expires_on, item.tracks_expiry, self.today(), item.sku)
            await self._lock(uow, [(item_id, depot_id)], create=True)
            code = (batch or "").strip() or (f"EXP-{expires_on.isoformat()}" if expires_on else UNBATCHED)
            row = await self._batch(uow, item_id, depot_id, code, expires_on, source)
            movement = await self._move(uow, "receipt", row, quantity, by, source=source, reason=note)
            await self._announce(uow, [(item_id, depot_id)])
            return movement

    async def issue(
        self,
        by: str,
        *,
        depot_id: str,
        item_id: str,
        quantity: float,
        reason: str | None = None,
        request_id: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[Movement]:
        """Issue to people: first expiring batch first; never expired stock, never what is
        reserved for deliveries, never more than is there."""
        quantity = domain.check_quantity(quantity)
        async with self.runtime.work(uow) as uow:
            item, _ = await self._known(uow, item_id, depot_id)
            balances = await self._lock(uow, [(item_id, depot_id)])
            balance = balances.get((item_id, depot_id))
            batches = await self._batches(uow, item_id, depot_id)
            usable = domain.usable(batches, self.today())
            reserved = balance.reserved if balance else 0.0
            available = max(round(usable - reserved, 6), 0.0)
            if quantity > available + domain.EPSILON:
                raise Conflict(
                    f"cannot issue {quantity:g} {item.unit} of {item.sku} at {depot_id}: only {available:g} available "
                    f"({balance.on_hand if balance else 0:g} on hand, {usable:g} unexpired, {reserved:g} reserved for deliveries)",
                    available=available,
                )
            picks = domain.pick_batches(batches, quantity, self.today())
            movements = [
                await self._move(
                    uow,
                    "issue",
                    await uow.session.get(StockBatch, b.batch_id),
                    -q,
                    by,
                    reason=reason,
                    request_id=request_id,
                )
                for b, q in picks
            ]
            await self._announce(uow, [(item_id, depot_id)])
            return movements

    async def transfer(
        self,
        by: str,
        *,
        item_id: str,
        from_depot_id: str,
        to_depot_id: str,
        quantity: float,
        suggestion_id: int | None = None,
        uow: UnitOfWork | None = None,
    ) -> str:
        """Move stock between depots, batch by batch (first expiring first), in one step."""
        quantity = domain.check_quantity(quantity)
        if from_depot_id == to_depot_id:
            raise Invalid(f"a transfer goes to another depot: from and to are both {from_depot_id}")
        async with self.runtime.work(uow) as uow:
            item, _ = await self._known(uow, item_id, from_depot_id)
            await self._known(uow, item_id, to_depot_id)
            keys = [(item_id, from_depot_id), (item_id, to_depot_id)]
            balances = await self._lock(uow, keys, create=True)
            source = balances[(item_id, from_depot_id)]
            batches = await self._batches(uow, item_id, from_depot_id)
            usable = domain.usable(batches, self.today())
            available = max(round(usable - source.reserved, 6), 0.0)
            if quantity > available + domain.EPSILON:
                raise Conflict(
                    f"cannot transfer {quantity:g} {item.unit} of {item.sku} from {from_depot_id}: only {available:g} "
                    f"available ({usable:g} unexpired, {source.reserved:g} reserved)",
                    available=available,
                )
            transfer_id = f"T-{uuid.uuid4().hex[:12]}"
            reason = f"transfer {from_depot_id} -> {to_depot_id}"
            for picked, q in domain.pick_batches(batches, quantity, self.today(), what="transfer"):
                out_batch = await uow.session.get(StockBatch, picked.batch_id)
                in_batch = await self._batch(
                    uow, item_id, to_depot_id, out_batch.batch, out_batch.expires_on, out_batch.source
                )
                await self._move(uow, "transfer_out", out_batch, -q, by, reason=reason, transfer_id=transfer_id)
                await self._move(uow, "transfer_in", in_batch, q, by, reason=reason, transfer_id=transfer_id)
            if suggestion_id is not None:
                await uow.session.execute(
                    update(TransferSuggestion)
                    .where(TransferSuggestion.suggestion_id == suggestion_id, TransferSuggestion.status == "open")
                    .values(status="done", transfer_id=transfer_id)
                )
            await self._announce(uow, keys)
            return transfer_id

    async def adjust(
        self,
        by: str,
        *,
        depot_id: str,
        item_id: str,
        quantity: float,
        reason: str,
        batch: str | None = None,
        note: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[Movement]:
        """Correct the ledger: loss, damage, expiry write-off (negative) or a stock count
        (either sign). Expired stock can be written off; it can never be issued."""
        delta = domain.check_delta(quantity)
        domain.check_choice(reason, domain.ADJUSTMENT_REASONS, "adjustment reason")
        if delta > 0 and reason != "count_correction":
            raise Invalid(f"a {reason} removes stock: give a negative quantity (a count correction may add)")
        async with self.runtime.work(uow) as uow:
            item, _ = await self._known(uow, item_id, depot_id)
            await self._lock(uow, [(item_id, depot_id)], create=True)
            text = reason + (f": {note}" if note else "")
            batches = await self._batches(uow, item_id, depot_id)
            if batch is not None:
                named = [b for b in batches if b.batch == batch]
                if not named and delta < 0:
                    raise NotFound(f"no batch {batch!r} of {item.sku} at {depot_id}")
                batches = named
            if delta > 0:
                if batches:
                    target = await uow.session.get(StockBatch, domain.fefo_order(batches)[-1].batch_id)
                elif item.tracks_expiry:
                    raise Invalid(f"{item.sku} tracks expiry: receive new stock with its batch and expiry instead")
                else:
                    target = await self._batch(uow, item_id, depot_id, batch or UNBATCHED, None, None)
                movements = [await self._move(uow, "adjustment", target, delta, by, reason=text)]
            else:
                picks = domain.pick_batches(batches, -delta, self.today(), include_expired=True, what="write off")
                movements = [
                    await self._move(
                        uow, "adjustment", await uow.session.get(StockBatch, b.batch_id), -q, by, reason=text
                    )
                    for b, q in picks
                ]
            await self._announce(uow, [(item_id, depot_id)])
            return movements
