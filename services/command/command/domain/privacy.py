"""Health data by sensitivity, not by name (DESIGN.md §6): which tickets carry it, what a
rule's templates may name for each department, and what each role and department is shown.

A ticket is health-sensitive when what it holds says so (`common.sensitivity`: temperatures,
symptoms, health tags, free text, a medicine, doctor's-visit or psychological request) or when
it comes from a health trigger (an event that carries temperatures or symptoms, a health
concern reported by hand). Every decision below reads that, never the ticket's kind.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from typing import Any

from common.errors import Invalid
from common.events.base import event_class
from common.sensitivity import HEALTH_VALUE_FIELDS, carries_health_values, is_sensitive
from common.vocabulary import HEALTH_CATEGORIES

# Partner departments outside health: they get the building, the action asked and a
# reference, nothing else; a health ticket shows to them under a neutral kind.
NEUTRAL_KIND = {"property": "building_action", "police": "public_order"}
WITHHELD = frozenset(NEUTRAL_KIND)
# How a building lead sees a sensitive ticket of their building.
NEEDS_ATTENTION = "needs_attention"

# Hand-report categories that are health matters by what they are for.
HEALTH_REPORT_CATEGORIES = frozenset({"health_concern"}) | HEALTH_CATEGORIES

# Facts that say nothing about anyone's health or how to reach them: what titles (on
# command.events.v1, in the agenda and in notices) and the community's own departments'
# actions may name.
PUBLIC_FACTS = frozenset(
    {
        "kind", "resident_id", "grid_id", "building_id", "community_id", "date", "consecutive_days",
        "item_id", "item_name", "depot_id", "on_hand", "threshold", "request_id", "shortages", "due_by",
        "count", "baseline", "window_start", "window_end", "round_id", "completion_rate", "sampled",
        "expected", "deadline", "sender_id", "channel", "ticket_id", "invited_at", "suggested_action",
    }
)  # fmt: skip
# Facts that are aggregates for some triggers (a surge of medicine requests names no one).
AGGREGATE_FACTS = {"event:DemandSurge": frozenset({"category"})}
# What a template for property or police may name: the building; the action is the text itself.
WITHHELD_FACTS = frozenset({"building_id"})


def health_trigger(trigger: str) -> bool:
    """A trigger whose problems are health matters whatever they hold: an event that carries
    temperatures or symptoms, or a health category reported by hand."""
    if trigger.startswith("category:"):
        return trigger.removeprefix("category:") in HEALTH_REPORT_CATEGORIES
    cls = event_class(trigger.removeprefix("event:"))
    return cls is not None and bool(HEALTH_VALUE_FIELDS & set(cls.model_fields))


def sensitive(trigger: str, facts: Mapping[str, Any], description: str | None = None) -> bool:
    """Whether a ticket (its trigger, facts and description) carries health data."""
    return health_trigger(trigger) or is_sensitive(facts, description=description)


def kind_says_health(trigger: str, facts: Mapping[str, Any]) -> bool:
    """Whether a ticket's kind would tell property or police something about health: it comes
    from a health trigger or holds health values. A ticket sensitive only for its free text
    ("B01 电梯停了") keeps its kind; the text itself is withheld."""
    return health_trigger(trigger) or carries_health_values(facts)


# -- templates ------------------------------------------------------------------------------


def title_facts(trigger: str) -> frozenset[str]:
    return PUBLIC_FACTS | AGGREGATE_FACTS.get(trigger, frozenset())


def action_facts(department: str, trigger: str) -> frozenset[str] | None:
    """What a rule's action for `department` may name; None: anything (health staff)."""
    if department == "health":
        return None
    if department in WITHHELD:
        return WITHHELD_FACTS
    return title_facts(trigger)


def template_names(template: str | None) -> tuple[str, ...]:
    """The fact names a template uses; Invalid for anything but plain `{name}` fields (format
    specs, conversions, attribute or index access, positional fields)."""
    if not template:
        return ()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise Invalid(f"template {template[:80]!r} is not a valid template: {exc}") from exc
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise Invalid(
                f"template field {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                "is not a plain {fact_name}: format specs, conversions and attribute or index access are refused"
            )
        names.append(name)
    return tuple(names)


def check_template(template: str | None, allowed: frozenset[str] | None, where: str) -> None:
    names = template_names(template)
    if allowed is None:
        return
    refused = sorted(set(names) - allowed)
    if refused:
        raise Invalid(
            f"{where} names {', '.join(refused)}, which it may not carry; it may name: {', '.join(sorted(allowed))}"
        )


@functools.lru_cache(maxsize=256)
def plain_parts(template: str) -> tuple[tuple[str, str | None], ...] | None:
    """A template as (text, fact name) pairs, parsed once (templates are few; a sweep fills
    thousands); None when a field is more than a plain name (such a template is never filled)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    parts = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or not name.isidentifier()):
            return None
        parts.append((literal, name))
    return tuple(parts)


# -- views ----------------------------------------------------------------------------------

# What property and police are shown of a ticket, over HTTP as on their topics: the
# building, the action asked, the reference, and where the ticket stands.
WITHHELD_VIEW = frozenset(
    {
        "ticket_id", "reference", "kind", "title", "action", "stage", "priority", "department", "owner",
        "building_id", "respond_by", "resolve_by", "overdue", "allowed", "escalation_level", "event_count",
        "opened_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "closed_at",
        "reopen_count",
    }
)  # fmt: skip


def withheld_view(ticket: Mapping[str, Any], department: str, is_sensitive: bool, action: str | None) -> dict[str, Any]:
    """A ticket as property or police see it: the allowlist above, the neutral kind for a
    ticket whose kind would say something of health, and a title made of the kind and the action."""
    neutral = is_sensitive and kind_says_health(ticket.get("trigger") or "", ticket.get("facts") or {})
    kind = NEUTRAL_KIND.get(department, "withheld") if neutral else ticket["kind"]
    shown = {k: (v if k in WITHHELD_VIEW else _empty(v)) for k, v in ticket.items()}
    shown.update(kind=kind, action=action, title=f"{kind}: {action or 'see the command center'}",
                 subject_id=ticket["ticket_id"], category=None)  # fmt: skip
    return shown


def building_lead_view(ticket: Mapping[str, Any], is_sensitive: bool) -> dict[str, Any]:
    """A ticket as a building lead sees it: never what people wrote (free text may be anyone's
    health); a sensitive ticket only as someone in their building who needs attention, where
    it stands and by when, without its facts or who holds it."""
    shown = {**ticket, "description": None, "resolution": None, "feedback_comment": None}
    if is_sensitive:  # which department or person holds it would say what it is about
        shown.update(kind=NEEDS_ATTENTION, category=None, title=f"{NEEDS_ATTENTION}: {ticket.get('building_id') or ''}".strip(),
                     facts={}, action=None, source_event_ids=[], department="—", owner="—", partners=[],
                     acknowledged_by=None, resolved_by=None)  # fmt: skip
    return shown


def public_title(kind: str, building_id: str | None, grid_id: str | None) -> str:
    """What the agenda shows of a sensitive ticket, whatever title an older rule gave it."""
    return f"{kind}: {building_id or grid_id or '—'}"


def _empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {}
    if isinstance(value, list):
        return []
    return None
