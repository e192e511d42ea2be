"""Rules, SLA and the owner directory, as loaded from the tables an admin edits, and their checks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from command.domain import privacy
from command.domain.tickets import OWNER_BY, PRIORITIES, higher
from common.errors import Invalid


@dataclass(frozen=True)
class PriorityRaise:
    field: str
    priority: str
    at_least: float | None = None
    any_of: tuple[str, ...] = ()

    def matches(self, facts: Mapping[str, Any]) -> bool:
        value = facts.get(self.field)
        if value is None:
            return False
        if self.at_least is not None:
            try:
                return float(value) >= self.at_least
            except (TypeError, ValueError):
                return False
        values = value if isinstance(value, list | tuple | set) else [value]
        return bool(set(map(str, values)) & set(self.any_of))


@dataclass(frozen=True)
class Rule:
    trigger: str  # "event:CheckInMissed" or "category:complaint"
    kind: str
    department: str
    owner_by: str
    priority: str
    title: str = "{kind}"
    action: str | None = None
    raise_priority: tuple[PriorityRaise, ...] = ()
    also_share: Mapping[str, str] = field(default_factory=dict)  # partner department -> action
    enabled: bool = True

    def priority_for(self, facts: Mapping[str, Any]) -> str:
        for candidate in self.raise_priority:
            if candidate.matches(facts):
                return higher(candidate.priority, self.priority)
        return self.priority


@dataclass(frozen=True)
class Sla:
    kind: str  # or "*"
    priority: str  # or "*"
    respond_minutes: int
    resolve_minutes: int
    resolve_same_day: bool = False


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    role: str
    department: str
    phone: str | None = None
    supervisor_id: str | None = None
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()
    active: bool = True


@dataclass(frozen=True)
class Department:
    department_id: str
    name: str
    partner: bool = False
    default_owner: str | None = None


@dataclass(frozen=True)
class Config:
    """Everything routing needs, as loaded from the tables an admin edits."""

    rules: Mapping[str, Rule]
    sla: tuple[Sla, ...]
    people: Mapping[str, Person]
    departments: Mapping[str, Department]
    # Answers already worked out from this (immutable) configuration: a sweep asks the same
    # few questions thousands of times (which SLA, which owner for this building).
    _answers: dict[tuple, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def rule(self, trigger: str) -> Rule | None:
        rule = self.rules.get(trigger)
        return rule if rule and rule.enabled else None

    def sla_for(self, kind: str, priority: str) -> Sla:
        key = ("sla", kind, priority)
        sla = self._answers.get(key)
        if sla is None:
            sla = self._answers[key] = self._sla_for(kind, priority)
        return sla

    def _sla_for(self, kind: str, priority: str) -> Sla:
        by_key = {(s.kind, s.priority): s for s in self.sla}
        for key in ((kind, priority), (kind, "*"), ("*", priority), ("*", "*")):
            if key in by_key:
                return by_key[key]
        return Sla("*", "*", 240, 2880)

    def supervisor_of(self, person_id: str) -> Person | None:
        person = self.people.get(person_id)
        if person is None or not person.supervisor_id:
            return None
        return self.people.get(person.supervisor_id)

    def owner_for(self, rule: Rule, grid_id: str | None, building_id: str | None) -> Person:
        """Who owns a new ticket: the grid worker of the grid (or of the building), else the
        department's default owner. Every ticket gets a named owner."""
        key = ("owner", rule.owner_by, rule.department, grid_id, building_id)
        owner = self._answers.get(key)
        if owner is None:
            owner = self._answers[key] = self._owner_for(rule, grid_id, building_id)
        return owner

    def _owner_for(self, rule: Rule, grid_id: str | None, building_id: str | None) -> Person:
        if rule.owner_by in ("grid", "building"):
            workers = [p for p in self.people.values() if p.active and p.role == "grid_worker"]
            if building_id:
                for person in workers:
                    if building_id in person.building_ids:
                        return person
            if grid_id:
                for person in sorted(workers, key=lambda p: p.person_id):
                    if grid_id in person.grid_ids:
                        return person
        return self.default_owner(rule.department)

    def default_owner(self, department_id: str) -> Person:
        department = self.departments.get(department_id)
        if department and department.default_owner in self.people:
            return self.people[department.default_owner]
        members = sorted(
            (p for p in self.people.values() if p.department == department_id and p.active), key=lambda p: p.person_id
        )
        if members:
            return members[0]
        return Person(
            person_id=f"{department_id}-duty",
            name=f"{department_id} duty",
            role="duty_officer",
            department=department_id,
        )


def check_rule(rule: Rule, departments: Iterable[str]) -> Rule:
    departments = set(departments)
    if not re.fullmatch(r"(event|category):[A-Za-z_][A-Za-z0-9_]*", rule.trigger):
        raise Invalid(f"trigger {rule.trigger!r} is not event:<EventType> or category:<name>")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", rule.kind):
        raise Invalid(f"kind {rule.kind!r} must be lower_snake_case, at most 40 characters")
    if rule.department not in departments:
        raise Invalid(f"unknown department {rule.department!r}; known: {', '.join(sorted(departments))}")
    if privacy.health_trigger(rule.trigger) and rule.department in privacy.WITHHELD:
        raise Invalid(
            f"{rule.trigger} tickets carry health data: {rule.department} may be told of them (also_share), not own them"
        )
    if rule.owner_by not in OWNER_BY:
        raise Invalid(f"owner_by {rule.owner_by!r} is not one of {', '.join(OWNER_BY)}")
    for priority in (rule.priority, *(r.priority for r in rule.raise_priority)):
        if priority not in PRIORITIES:
            raise Invalid(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    for entry in rule.raise_priority:
        if (entry.at_least is None) == (not entry.any_of):
            raise Invalid(f"raise_priority on {entry.field!r} needs exactly one of at_least or any_of")
    for partner in rule.also_share:
        if partner not in departments:
            raise Invalid(f"also_share names unknown department {partner!r}")
    # What each template may name, by who reads it (titles travel on command.events.v1).
    privacy.check_template(rule.title, privacy.title_facts(rule.trigger), "title")
    privacy.check_template(
        rule.action, privacy.action_facts(rule.department, rule.trigger), f"action for {rule.department}"
    )
    for partner, action in rule.also_share.items():
        privacy.check_template(action, privacy.action_facts(partner, rule.trigger), f"also_share action for {partner}")
    return rule


def check_sla(sla: Sla) -> Sla:
    if sla.priority != "*" and sla.priority not in PRIORITIES:
        raise Invalid(f"priority {sla.priority!r} is not one of {', '.join(PRIORITIES)} or *")
    if sla.respond_minutes <= 0 or sla.resolve_minutes <= 0:
        raise Invalid("respond_minutes and resolve_minutes must be positive")
    if sla.respond_minutes > sla.resolve_minutes:
        raise Invalid(f"respond_minutes {sla.respond_minutes} is after resolve_minutes {sla.resolve_minutes}")
    return sla


def check_person(person: Person, people: Mapping[str, Person], departments: Iterable[str]) -> Person:
    departments = set(departments)
    if person.department not in departments:
        raise Invalid(f"unknown department {person.department!r}; known: {', '.join(sorted(departments))}")
    if person.supervisor_id:
        if person.supervisor_id == person.person_id:
            raise Invalid("a person cannot supervise themselves")
        if person.supervisor_id not in people:
            raise Invalid(f"unknown supervisor {person.supervisor_id!r}: add them to the directory first")
        seen = {person.person_id}
        boss = people.get(person.supervisor_id)
        while boss is not None:
            if boss.person_id in seen:
                raise Invalid(f"supervisor {person.supervisor_id!r} would make a loop of supervisors")
            seen.add(boss.person_id)
            boss = people.get(boss.supervisor_id) if boss.supervisor_id else None
    return person


# Kinds of the default health rules: the heat map keeps their cells coarse (k-anonymous).
HEALTH_KINDS = frozenset({"fever", "health_concern"})
NEUTRAL_KIND = privacy.NEUTRAL_KIND
