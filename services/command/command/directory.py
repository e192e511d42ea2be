"""Rules, SLA and the owner directory: loaded from the tables an admin edits, cached per
replica for COMMAND_CONFIG_CACHE_S, seeded from the rules file into empty tables."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from sqlalchemy import func, select

from command import defaults, domain
from command.models import DepartmentRow, PersonRow, RuleRow, SlaRow
from command.settings import CommandSettings
from common.db import insert_ignore
from common.errors import Invalid
from common.outbox import UnitOfWork
from common.runtime import Runtime

log = logging.getLogger(__name__)


class Directory:
    def __init__(self, runtime: Runtime, settings: CommandSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self._config: domain.Config | None = None
        self._loaded = 0.0
        self._seeded = asyncio.Event()

    async def config(self) -> domain.Config:
        """Rules, SLA and directory, cached for COMMAND_CONFIG_CACHE_S (edits here clear it)."""
        if self._config is not None and time.monotonic() - self._loaded < self.settings.config_cache_s:
            return self._config
        if not self._seeded.is_set():  # the consumer and jobs may start before the start-up seeding ends
            await asyncio.wait_for(self._seeded.wait(), timeout=60)
        async with self.runtime.db.session() as session:
            departments = (await session.execute(select(DepartmentRow))).scalars().all()
            people = (await session.execute(select(PersonRow))).scalars().all()
            rules = (await session.execute(select(RuleRow))).scalars().all()
            slas = (await session.execute(select(SlaRow))).scalars().all()
        self._config = domain.Config(
            rules={r.trigger: _rule(r) for r in rules},
            sla=tuple(_sla(s) for s in slas),
            people={p.person_id: _person(p) for p in people},
            departments={d.department_id: _department(d) for d in departments},
        )
        self._loaded = time.monotonic()
        return self._config

    def forget_config(self) -> None:
        self._config = None

    async def seed(self) -> int:
        """At start-up: fill empty configuration tables from the rules file (never overwrite)."""
        try:
            if not self.settings.seed_defaults:
                return 0
            async with self.runtime.work() as uow:
                if await uow.session.scalar(select(func.count()).select_from(DepartmentRow)):
                    return 0
                return await self._seed(uow)
        finally:
            self.forget_config()
            self._seeded.set()

    async def restore_defaults(self, uow: UnitOfWork | None = None) -> int:
        async with self.runtime.work(uow) as uow:
            added = await self._seed(uow)
        self.forget_config()
        return added

    async def _seed(self, uow: UnitOfWork) -> int:
        """Insert the rules file's rows that are missing; existing rows are never overwritten."""
        loaded = defaults.load(self.settings.rules_file)
        session, now = uow.session, self.runtime.clock.now()
        added = 0
        for d in loaded.departments:
            added += await insert_ignore(session, DepartmentRow, _department_row(d).model_dump(), ["department_id"])
        for p in loaded.people:
            added += await insert_ignore(session, PersonRow, _person_row(p).model_dump(), ["person_id"])
        for r in loaded.rules:
            added += await insert_ignore(session, RuleRow, _rule_row(r, "defaults", now).model_dump(), ["trigger"])
        for s in loaded.sla:
            added += await insert_ignore(session, SlaRow, _sla_row(s).model_dump(), ["kind", "priority"])
        log.info("seeded %d configuration rows from %s", added, self.settings.rules_file or defaults.PACKAGED)
        return added

    async def _save(self, row, uow: UnitOfWork | None):
        async with self.runtime.work(uow) as uow:
            await uow.session.merge(row)
        self.forget_config()
        return row

    async def save_rule(self, rule: domain.Rule, by: str, uow: UnitOfWork | None = None) -> RuleRow:
        config = await self.config()
        domain.check_rule(rule, config.departments)
        return await self._save(_rule_row(rule, by, self.runtime.clock.now()), uow)

    async def save_sla(self, sla: domain.Sla, uow: UnitOfWork | None = None) -> SlaRow:
        config = await self.config()
        kinds = {r.kind for r in config.rules.values()}
        if sla.kind != "*" and sla.kind not in kinds:
            raise Invalid(f"no rule makes tickets of kind {sla.kind!r}; known: {', '.join(sorted(kinds))}")
        domain.check_sla(sla)
        return await self._save(_sla_row(sla), uow)

    async def save_person(self, person: domain.Person, uow: UnitOfWork | None = None) -> PersonRow:
        config = await self.config()
        domain.check_person(person, {**config.people, person.person_id: person}, config.departments)
        return await self._save(_person_row(person), uow)

    async def save_department(self, department: domain.Department, uow: UnitOfWork | None = None) -> DepartmentRow:
        config = await self.config()
        if department.default_owner and department.default_owner not in config.people:
            raise Invalid(f"unknown default_owner {department.default_owner!r}: add them to the directory first")
        return await self._save(_department_row(department), uow)


def _rule(row: RuleRow) -> domain.Rule:
    return defaults.rule(
        {
            "trigger": row.trigger, "kind": row.kind, "department": row.department, "owner_by": row.owner_by,
            "priority": row.priority, "title": row.title, "action": row.action, "raise_priority": row.raise_priority,
            "also_share": row.also_share, "enabled": row.enabled,
        }
    )  # fmt: skip


def _rule_row(rule: domain.Rule, by: str, now: datetime) -> RuleRow:
    return RuleRow(
        trigger=rule.trigger, kind=rule.kind, department=rule.department, owner_by=rule.owner_by,
        priority=rule.priority, title=rule.title, action=rule.action,
        raise_priority=[
            {k: v for k, v in {"field": r.field, "priority": r.priority, "at_least": r.at_least,
                               "any_of": list(r.any_of) or None}.items() if v is not None}
            for r in rule.raise_priority
        ],
        also_share=dict(rule.also_share), enabled=rule.enabled, updated_by=by, updated_at=now,
    )  # fmt: skip


def _sla(row: SlaRow) -> domain.Sla:
    return domain.Sla(row.kind, row.priority, row.respond_minutes, row.resolve_minutes, row.resolve_same_day)


def _sla_row(sla: domain.Sla) -> SlaRow:
    return SlaRow(kind=sla.kind, priority=sla.priority, respond_minutes=sla.respond_minutes,
                  resolve_minutes=sla.resolve_minutes, resolve_same_day=sla.resolve_same_day)  # fmt: skip


def _person(row: PersonRow) -> domain.Person:
    return domain.Person(
        person_id=row.person_id, name=row.name, role=row.role, department=row.department, phone=row.phone,
        supervisor_id=row.supervisor_id, grid_ids=tuple(row.grid_ids), building_ids=tuple(row.building_ids),
        active=row.active,
    )  # fmt: skip


def _person_row(person: domain.Person) -> PersonRow:
    return PersonRow(
        person_id=person.person_id, name=person.name, phone=person.phone, role=person.role,
        department=person.department, supervisor_id=person.supervisor_id, grid_ids=list(person.grid_ids),
        building_ids=list(person.building_ids), active=person.active,
    )  # fmt: skip


def _department(row: DepartmentRow) -> domain.Department:
    return domain.Department(row.department_id, row.name, row.partner, row.default_owner)


def _department_row(d: domain.Department) -> DepartmentRow:
    return DepartmentRow(department_id=d.department_id, name=d.name, partner=d.partner, default_owner=d.default_owner)
