"""Who may see and do what, and what a partner department is shown of a ticket."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from command.domain import privacy
from command.domain.config import Person
from common.errors import Forbidden, Invalid, NotFound
from common.events.partner import (
    HealthTicketShared,
    PartnerEvent,
    PoliceTicketShared,
    PropertyTicketShared,
)
from common.vocabulary import STAFF_ROLES, Role


@dataclass(frozen=True)
class Actor:
    sub: str
    role: Role
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()
    department: str | None = None


ROLE_DEPARTMENT = {"supplies_officer": "supplies", "dispatcher": "dispatch"}
REPORTER_ROLES = frozenset(
    {
        "resident",
        "building_lead",
        "grid_worker",
        "volunteer",
        "supplies_officer",
        "dispatcher",
        "command",
        "admin",
        "partner",
    }
)


@dataclass(frozen=True)
class TicketScope:
    """What visibility depends on, for one ticket."""

    owner: str
    department: str
    grid_id: str | None
    building_id: str | None
    resident_id: str | None
    reported_by: str | None = None


def can_see(actor: Actor, ticket: TicketScope) -> bool:
    if actor.role in STAFF_ROLES or ticket.owner == actor.sub:
        return True
    if actor.role == "resident":
        return ticket.resident_id == actor.sub or (ticket.reported_by == actor.sub and ticket.resident_id is None)
    if actor.role == "partner":
        return actor.department is not None and ticket.department == actor.department
    if actor.role == "grid_worker":
        return ticket.grid_id is not None and ticket.grid_id in actor.grid_ids
    if actor.role == "building_lead":
        return ticket.building_id is not None and ticket.building_id in actor.building_ids
    if actor.role in ROLE_DEPARTMENT:
        return ticket.department == ROLE_DEPARTMENT[actor.role]
    return False


def can_work(actor: Actor, ticket: TicketScope) -> bool:
    """Acknowledge, resolve: the owner, their department, the grid's workers, staff."""
    if actor.role in ("resident", "building_lead", "volunteer"):
        return False
    return can_see(actor, ticket)


def ensure_can_work(actor: Actor, ticket: TicketScope, action: str) -> None:
    if not can_see(actor, ticket):
        raise NotFound("no such ticket that you may see")  # as for one that does not exist
    if not can_work(actor, ticket):
        raise Forbidden(f"role {actor.role!r} may not {action} tickets; the owner, their department or staff may")


# Who may name a resident in a report by hand, and set its priority.
REPORTS_ABOUT_ANYONE = frozenset({"command", "admin", "dispatcher", "supplies_officer"})
SETS_PRIORITY = frozenset({"command", "admin", "grid_worker", "dispatcher", "supplies_officer"})


def ensure_can_report_about(
    actor: Actor, resident_id: str, grid_id: str | None, building_id: str | None, known: bool
) -> None:
    """A report by hand names a resident the reporter may act for: staff any, a grid worker
    their grids', a building lead their buildings', a resident themselves. Any other answers
    as a resident who does not exist would, naming no building or grid."""
    if actor.role == "resident" and resident_id == actor.sub:
        return
    if actor.role in REPORTS_ABOUT_ANYONE:
        return
    allowed = known and (
        (actor.role == "grid_worker" and grid_id in actor.grid_ids)
        or (actor.role == "building_lead" and building_id in actor.building_ids)
    )
    if not allowed:
        raise NotFound(f"no resident {resident_id!r} among those you may act for")


def ensure_can_set_priority(actor: Actor, priority: str | None) -> None:
    if priority is not None and actor.role not in SETS_PRIORITY:
        raise Forbidden(f"role {actor.role!r} may not set a priority: the rule decides it")


def ensure_can_reassign(actor: Actor, ticket: TicketScope) -> None:
    if actor.role in STAFF_ROLES:
        return
    if actor.role == "partner" and ticket.department == actor.department:
        return
    if ticket.owner == actor.sub and actor.role not in ("resident", "volunteer"):
        return
    raise Forbidden("only command staff, the owner, or the owning partner department may reassign a ticket")


def ensure_can_hand_over(actor: Actor, sensitive: bool, to: Person, from_department: str | None = None) -> None:
    """Where a ticket may go: a partner hands over within its own department, and a ticket
    that carries health data never moves into a department that must not see it (property,
    police)."""
    if actor.role == "partner" and to.department != actor.department:
        raise Forbidden(
            f"a partner hands tickets over within its own department ({actor.department}); command staff may move them elsewhere"
        )
    if sensitive and to.department in privacy.WITHHELD and to.department != from_department:
        raise Invalid(
            f"this ticket carries health data: it may go to health or the community's own departments, not to {to.department}"
        )


def withholds_health(actor: Actor) -> bool:
    """A partner outside health sees every ticket as its topic shows it (the building, the
    action, a reference), however the ticket reached it."""
    return actor.role == "partner" and actor.department != "health"


def view(actor: Actor, ticket: Mapping[str, Any], sensitive: bool) -> dict[str, Any]:
    """A ticket as `actor` may see it (the allowlist of their role and department)."""
    if withholds_health(actor):
        department = actor.department or ""
        action = (ticket.get("shares") or {}).get(department)
        return privacy.withheld_view(ticket, department, sensitive, action)
    if actor.role == "building_lead":
        return privacy.building_lead_view(ticket, sensitive)
    return dict(ticket)


def shows_notes(actor: Actor) -> bool:
    """Whether the history's notes (what people wrote) are shown: free text may be health data."""
    return not (withholds_health(actor) or actor.role == "building_lead")


def ensure_can_give_feedback(actor: Actor, ticket: TicketScope) -> str:
    """Feedback comes from the resident, or is recorded on their behalf; returns "resident" or "on_behalf"."""
    if actor.role == "resident":
        if actor.sub == ticket.resident_id or (ticket.resident_id is None and ticket.reported_by == actor.sub):
            return "resident"
        raise Forbidden("residents give feedback only on tickets about themselves")
    if actor.role in STAFF_ROLES or (actor.role == "grid_worker" and can_see(actor, ticket)):
        return "on_behalf"
    raise Forbidden(
        f"role {actor.role!r} may not record feedback; the resident, a grid worker of the grid or staff may"
    )


# What the health department is shown of a ticket's facts: nothing else leaves the command center.
HEALTH_FACTS = ("name", "unit", "room", "phone", "temperature_c", "symptoms", "date")


def partner_event(
    department: str, ticket: Mapping[str, Any], action: str | None, reference: str | None = None
) -> PartnerEvent | None:
    """The minimised message for a partner department about a ticket, or None if the
    department has no partner topic. Property and police get the building, the action and
    `reference` (their own reference to the ticket, which no other topic carries) as
    `ticket_id`; a ticket whose kind would say something of health shows under a neutral kind."""
    common = {
        "ticket_id": ticket["ticket_id"],
        "kind": ticket["kind"],
        "stage": ticket["stage"],
        "priority": ticket["priority"],
        "respond_by": ticket["respond_by"],
        "resolve_by": ticket["resolve_by"],
        "at": ticket["at"],
        "action": action,
    }
    facts = ticket.get("facts") or {}
    if department == "health":
        shown = {k: facts[k] for k in HEALTH_FACTS if facts.get(k) is not None}
        return HealthTicketShared(
            **common, resident_id=ticket.get("resident_id"), building_id=ticket.get("building_id"), **shown
        )
    if department not in privacy.WITHHELD:
        return None
    if reference is None:
        raise ValueError(f"a message for {department} needs its reference to the ticket")
    common["ticket_id"] = reference
    if privacy.kind_says_health(ticket.get("trigger") or "", facts):
        common["kind"] = privacy.NEUTRAL_KIND[department]
    if department == "property":
        return PropertyTicketShared(**common, building_id=ticket.get("building_id"))
    return PoliceTicketShared(**common, building_id=ticket.get("building_id"))


def reference(key: bytes, department: str, ticket_id: str) -> str:
    """A department's own reference to a ticket: an HMAC of the ticket id under a key of that
    department, so no two departments' topics (nor partner.health.v1's ticket ids) join."""
    department_key = hmac.new(key, department.encode(), hashlib.sha256).digest()
    return "ref-" + hmac.new(department_key, ticket_id.encode(), hashlib.sha256).hexdigest()[:24]
