"""Members: registered, linked to their family, seen or not on the leaderboard."""

from __future__ import annotations

from sqlalchemy import select

from common.db import insert_ignore
from common.errors import Conflict, NotFound
from common.outbox import UnitOfWork
from timebank import domain
from timebank.domain import Actor
from timebank.ledger import Ledger, new_id
from timebank.models import FamilyLink, Member


class Members(Ledger):
    async def register_member(
        self, actor: Actor, member_id: str | None, name: str, kind: str, *, uow: UnitOfWork | None = None
    ) -> Member:
        member_id = member_id or (actor.sub if not actor.is_staff else new_id("M"))
        domain.ensure_self_or_staff(actor, member_id, "register this member")
        domain.check_member(member_id, name, kind)
        async with self.runtime.work(uow) as uow:
            existing = await uow.session.get(Member, member_id)
            if existing is not None:
                raise Conflict(f"member {member_id} already exists", member_id=member_id)
            member = Member(
                member_id=member_id, name=name.strip(), kind=kind, opened_by=actor.sub, created_at=self.clock.now()
            )
            uow.session.add(member)
            await self._accounts(uow, [domain.member_account(member_id, u) for u in domain.UNITS])
        return member

    async def member(self, member_id: str) -> dict:
        async with self.runtime.db.session() as session:
            member = await session.get(Member, member_id)
            if member is None:
                raise NotFound(f"no member {member_id!r}")
            links = (
                await session.execute(
                    select(FamilyLink, Member.name)
                    .join(Member, Member.member_id == FamilyLink.relative_id)
                    .where(FamilyLink.member_id == member_id)
                    .order_by(FamilyLink.relative_id)
                )
            ).all()
        return {
            "member_id": member.member_id,
            "name": member.name,
            "kind": member.kind,
            "public_recognition": member.public_recognition,
            "created_at": member.created_at,
            "family": [
                {"member_id": link.relative_id, "name": name, "relation": link.relation} for link, name in links
            ],
        }

    async def link_family(
        self, actor: Actor, member_id: str, relative_id: str, relation: str, *, uow: UnitOfWork | None = None
    ) -> dict:
        inverse = domain.check_relation(member_id, relative_id, relation)
        async with self.runtime.work(uow) as uow:
            await self._member(uow, member_id)
            await self._member(uow, relative_id, "relative")
            now = self.clock.now()
            created = await insert_ignore(
                uow.session,
                FamilyLink,
                {
                    "member_id": member_id,
                    "relative_id": relative_id,
                    "relation": relation,
                    "recorded_by": actor.sub,
                    "recorded_at": now,
                },
                ["member_id", "relative_id"],
            )
            if not created:
                raise Conflict(f"{relative_id} is already linked to {member_id}")
            await insert_ignore(
                uow.session,
                FamilyLink,
                {
                    "member_id": relative_id,
                    "relative_id": member_id,
                    "relation": inverse,
                    "recorded_by": actor.sub,
                    "recorded_at": now,
                },
                ["member_id", "relative_id"],
            )
        return {"member_id": member_id, "relative_id": relative_id, "relation": relation}

    async def set_recognition(
        self, actor: Actor, member_id: str, public: bool, *, uow: UnitOfWork | None = None
    ) -> Member:
        domain.ensure_self_or_staff(actor, member_id, "change this member's recognition")
        async with self.runtime.work(uow) as uow:
            member = await self._member(uow, member_id)
            member.public_recognition = public
        return member
