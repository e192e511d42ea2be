"""Read the rules file (YAML): departments, people, rules and SLA, as domain values.

The packaged `rules.yaml` holds sensible defaults; COMMAND_RULES_FILE points at another.
The database is seeded from it once; afterwards an admin edits the tables over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from command import domain
from common.errors import Invalid

PACKAGED = Path(__file__).with_name("rules.yaml")


@dataclass(frozen=True)
class Defaults:
    departments: list[domain.Department]
    people: list[domain.Person]
    rules: list[domain.Rule]
    sla: list[domain.Sla]


def load(path: str | Path | None = None) -> Defaults:
    raw = yaml.safe_load(Path(path or PACKAGED).read_text(encoding="utf-8")) or {}
    departments = [domain.Department(**d) for d in raw.get("departments", [])]
    names = [d.department_id for d in departments]
    people = [person(p) for p in raw.get("people", [])]
    directory = {p.person_id: p for p in people}
    for p in people:
        domain.check_person(p, directory, names)
    rules = [domain.check_rule(rule(r), names) for r in raw.get("rules", [])]
    sla = [domain.check_sla(domain.Sla(**s)) for s in raw.get("sla", [])]
    return Defaults(departments, people, rules, sla)


def person(raw: dict[str, Any]) -> domain.Person:
    raw = dict(raw)
    raw["grid_ids"] = tuple(raw.get("grid_ids") or ())
    raw["building_ids"] = tuple(raw.get("building_ids") or ())
    return domain.Person(**raw)


def rule(raw: dict[str, Any]) -> domain.Rule:
    raw = dict(raw)
    try:
        raw["raise_priority"] = tuple(
            domain.PriorityRaise(
                field=r["field"],
                priority=r["priority"],
                at_least=r.get("at_least"),
                any_of=tuple(r.get("any_of") or ()),
            )
            for r in raw.get("raise_priority") or ()
        )
    except KeyError as exc:
        raise Invalid(f"raise_priority entry is missing {exc}") from exc
    raw["also_share"] = dict(raw.get("also_share") or {})
    return domain.Rule(**raw)
