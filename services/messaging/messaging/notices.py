"""Notices (宣传): a staff member tells buildings, grids or tags something by text, by voice
and on a printable poster; each household's reach is tracked, and a building's lead sees
which of their households it has not reached yet (what `MessagingService` does besides
queueing what events cause).

A household is reached when a message of the notice to any of its members was delivered
(the gateway's receipt, `POST /receipts/<channel>`) or replied to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from common.auth import Principal, Role
from common.errors import Forbidden, Invalid, NotFound
from messaging import domain
from messaging.models import Contact, Message, Notice
from messaging.replies import _contact


@dataclass(frozen=True)
class NoticeDraft:
    headline_zh: str
    body_zh: str
    headline_en: str | None = None
    body_en: str | None = None
    building_ids: tuple[str, ...] = ()
    grid_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    channels: tuple[str, ...] = ("text",)
    urgent: bool = False


class Notices:
    """Mixed into `MessagingService`, whose runtime, settings and `_row` these use."""

    async def send_notice(self, user: Principal, draft: NoticeDraft) -> Notice:
        """Queue the notice to every resident it names, once per resident and channel, in
        the transaction that records it."""
        if not (draft.building_ids or draft.grid_ids or draft.tags):
            raise Invalid("name at least one building, grid or tag: a notice to everyone names them all")
        if not draft.channels:
            raise Invalid("choose at least one channel: text, voice")
        notice_id = uuid.uuid4().hex
        facts = {"headline_zh": draft.headline_zh, "body_zh": draft.body_zh,
                 "headline_en": draft.headline_en or draft.headline_zh,
                 "body_en": draft.body_en or "(in Chinese above / 见上)"}  # fmt: skip
        buildings, grids, tags = frozenset(draft.building_ids), frozenset(draft.grid_ids), frozenset(draft.tags)
        async with self.runtime.work() as uow:
            query = select(Contact).where(Contact.role == "resident")
            if buildings or grids:
                query = query.where(Contact.building_id.in_(buildings) | Contact.grid_id.in_(grids))
            contacts = [_contact(row) for row in (await uow.session.execute(query)).scalars()]
            now = self.clock.now()
            rows, households = [], set()
            for contact in contacts:
                if not domain.in_audience(contact, buildings, grids, tags):
                    continue
                households.add(contact.household_id or contact.person_id)
                draft_message = domain.Draft(
                    "notice", contact.person_id, facts, urgent=draft.urgent, notice_id=notice_id
                )
                for channel in domain.notice_channels(draft.channels, contact):
                    key = f"notice:{notice_id}:{contact.person_id}:{channel}"
                    rows.append(self._row(draft_message, contact, key, now, channel=channel))
            notice = Notice(notice_id=notice_id, headline_zh=draft.headline_zh, headline_en=draft.headline_en,
                            body_zh=draft.body_zh, body_en=draft.body_en, building_ids=sorted(buildings),
                            grid_ids=sorted(grids), tags=sorted(tags), channels=list(draft.channels),
                            urgent=draft.urgent, sent_by=user.sub, recipients=len({r["recipient_id"] for r in rows}),
                            households=len(households), created_at=now)  # fmt: skip
            uow.session.add(notice)
            if rows:
                insert = self.runtime.db.insert(Message)
                await uow.session.execute(insert.on_conflict_do_nothing(index_elements=["idempotency_key"]), rows)
        return notice

    async def notice(self, notice_id: str) -> Notice:
        async with self.runtime.db.session() as session:
            notice = await session.get(Notice, notice_id)
        if notice is None:
            raise NotFound(f"no notice {notice_id!r}")
        return notice

    async def notices(self, limit: int = 50) -> list[Notice]:
        async with self.runtime.db.session() as session:
            rows = await session.execute(select(Notice).order_by(Notice.created_at.desc()).limit(limit))
            return list(rows.scalars())

    async def reach(self, user: Principal, notice_id: str, building_id: str | None = None) -> dict[str, Any]:
        """The notice's households, reached or not: staff see every building (or the one
        asked); a building lead only their own buildings; nobody else."""
        if user.is_staff:
            buildings = {building_id} if building_id else None
        elif user.role == Role.building_lead:
            if building_id and not user.can_act_for_building(building_id):
                raise Forbidden(f"you may not see building {building_id}")
            buildings = {building_id} if building_id else set(user.building_ids)
        else:
            raise Forbidden("a notice's reach is for staff and building leads")
        notice = await self.notice(notice_id)
        is_reached = case((Message.status == "replied", 1),
                          ((Message.status == "delivered") & (Message.channel != "page"), 1), else_=0)  # fmt: skip
        query = (
            select(Message.household_id, Message.recipient_id, func.max(is_reached))
            .where(Message.notice_id == notice_id)
            .group_by(Message.household_id, Message.recipient_id)
        )
        async with self.runtime.db.session() as session:
            per_member = (await session.execute(query)).all()
            contacts = {
                row.person_id: row
                for row in (
                    await session.execute(
                        select(Contact).where(Contact.person_id.in_({r[1] for r in per_member}))
                    )
                ).scalars()
            } if per_member else {}  # fmt: skip
        households: dict[str, dict[str, Any]] = {}
        for household_id, person_id, reached in per_member:
            contact = contacts.get(person_id)
            building = contact.building_id if contact else None
            if buildings is not None and building not in buildings:
                continue
            key = household_id or person_id
            household = households.setdefault(
                key, {"household_id": key, "building_id": building, "unit": contact.unit if contact else None,
                      "room": contact.room if contact else None, "reached": False, "members": []}
            )  # fmt: skip
            household["reached"] = household["reached"] or bool(reached)
            household["members"].append({"person_id": person_id, "name": contact.name if contact else None,
                                         "reached": bool(reached)})  # fmt: skip
        shaped = sorted(households.values(), key=lambda h: (h["building_id"] or "", h["unit"] or "", h["room"] or ""))
        return {
            "notice_id": notice.notice_id,
            "headline_zh": notice.headline_zh,
            "households": len(shaped),
            "reached": sum(1 for h in shaped if h["reached"]),
            "not_reached": [h for h in shaped if not h["reached"]],
        }
