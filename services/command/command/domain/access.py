"""Who may see and do what, and what a partner department is shown of a ticket."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from command.domain.config import HEALTH_KINDS, NEUTRAL_KIND, Person
from common.errors import Forbidden, Invalid
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
        raise Forbidden("you may not see this ticket")
    if not can_work(actor, ticket):
        raise Forbidden(f"role {actor.role!r} may not {action} tickets; the owner, their department or staff may")


def ensure_can_reassign(actor: Actor, ticket: TicketScope) -> None:
    if actor.role in STAFF_ROLES:
        return
    if actor.role == "partner" and ticket.department == actor.department:
        return
    if ticket.owner == actor.sub and actor.role not in ("resident", "volunteer"):
        return
    raise Forbidden("only command staff, the owner, or the owning partner department may reassign a ticket")


def ensure_can_hand_over(actor: Actor, kind: str, to: Person) -> None:
    """Where a ticket may go: a partner hands over within its own department, and a health
    ticket never goes to a partner that must not see health data (property, police)."""
    if actor.role == "partner" and to.department != actor.department:
        raise Forbidden(
            f"a partner hands tickets over within its own department ({actor.department}); command staff may move them elsewhere"
        )
    if kind in HEALTH_KINDS and to.department in NEUTRAL_KIND:
        raise Invalid(
            f"a {kind} ticket carries health data: it may go to health or the community's own departments, not to {to.department}"
        )


def withholds_health(actor: Actor, kind: str) -> bool:
    """A partner outside health sees a health ticket as its topic shows it (no health data),
    however the ticket reached it (as its owner after an escalation, say)."""
    return actor.role == "partner" and actor.department != "health" and kind in HEALTH_KINDS


def without_health(ticket: Mapping[str, Any], department: str | None) -> dict[str, Any]:
    """A health ticket as shown to such a partner: the neutral kind, the building and the
    action; nothing about the resident, their health or what was said about it."""
    kind = NEUTRAL_KIND.get(department or "", "withheld")
    return {**ticket, "kind": kind, "category": None, "title": f"{kind}: {ticket.get('action') or 'see the command center'}",
            "description": None, "facts": {}, "subject_id": ticket["ticket_id"], "resident_id": None, "source_event_ids": [],
            "reported_by": None, "resolution": None, "feedback_comment": None}  # fmt: skip


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


# What each partner may see of a ticket's facts: nothing else leaves the command center.
HEALTH_FACTS = ("name", "unit", "room", "phone", "temperature_c", "symptoms", "date")
# Kinds that are health data themselves ("a fever in building 5"): other partners see a neutral kind.


def partner_event(department: str, ticket: Mapping[str, Any], action: str | None) -> PartnerEvent | None:
    """The minimised message for a partner department about a ticket, or None if the
    department has no partner topic. Property and police messages have no health field."""
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
    if department in NEUTRAL_KIND and common["kind"] in HEALTH_KINDS:
        common["kind"] = NEUTRAL_KIND[department]
    if department == "property":
        return PropertyTicketShared(**common, building_id=ticket.get("building_id"))
    if department == "police":
        summary = None if ticket["kind"] in HEALTH_KINDS else ticket.get("description")
        return PoliceTicketShared(**common, building_id=ticket.get("building_id"), summary=summary)
    return None
