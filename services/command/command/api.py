"""Command-center HTTP routes: parse, authorise, call the use case, shape the answer."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import PlainTextResponse
from pydantic import AwareDatetime, BaseModel, Field

from command import agenda as agenda_md
from command import changes, defaults, domain
from command.models import Ticket, TicketLog
from command.service import CommandService
from common.auth import CurrentUser, Principal, Role, require
from common.errors import Forbidden, Invalid, NotFound
from common.limits import RequestModel
from common.vocabulary import Priority

router = APIRouter()


def get_service(request: Request) -> CommandService:
    return request.app.state.service


Service = Annotated[CommandService, Depends(get_service)]
Staff = Annotated[Principal, Depends(require(Role.command))]


async def ticket_id_of(ticket_id: str, user: CurrentUser, service: Service) -> str:
    """The ticket a route names. A property or police desk names it by the reference its
    topic carries (`ref-…`, see docs/partners.md), the id it knows; anyone may use the id."""
    if ticket_id.startswith("ref-") and user.department and domain.withholds_health(actor(user)):
        found = await service.by_reference(user.department, ticket_id)
        if found is None:
            raise NotFound("no such ticket that you may see")
        return found
    return ticket_id


TicketId = Annotated[str, Depends(ticket_id_of)]
Admin = Annotated[Principal, Depends(require())]  # admin only


def actor(user: Principal) -> domain.Actor:
    return domain.Actor(user.sub, user.role.value, tuple(user.grid_ids), tuple(user.building_ids), user.department)


# -- tickets ------------------------------------------------------------------------------


class TicketOut(BaseModel):
    ticket_id: str
    kind: str
    category: str | None
    title: str
    description: str | None
    action: str | None
    stage: str
    priority: str
    department: str
    owner: str
    subject_id: str
    grid_id: str | None
    building_id: str | None
    resident_id: str | None
    respond_by: datetime
    resolve_by: datetime
    overdue: str | None = Field(description="respond or resolve when that deadline has passed, else null")
    allowed: list[str] = Field(description="what can be done next: acknowledge, resolve, feedback, reassign")
    escalation_level: int
    event_count: int
    source_event_ids: list[str]
    facts: dict[str, Any]
    partners: list[str]
    reported_by: str | None
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    closed_at: datetime | None
    satisfaction: int | None
    feedback_comment: str | None
    reopen_count: int
    reference: str | None = Field(
        default=None, description="for property and police: their reference to the ticket, as on their topic"
    )


class TransitionOut(BaseModel):
    action: str
    from_stage: str | None
    to_stage: str
    by: str
    at: datetime
    owner: str | None
    note: str | None
    satisfaction: int | None


class TicketDetail(TicketOut):
    history: list[TransitionOut]


def _out(ticket: Ticket, service: CommandService, user: Principal) -> dict[str, Any]:
    data = ticket.model_dump()
    data["overdue"] = service.overdue_now(ticket)
    data["allowed"] = [a for a in domain.HTTP_ACTIONS if a in domain.TRANSITIONS.get(ticket.stage, {})]
    data["partners"] = sorted(ticket.shares)
    who = actor(user)
    if domain.withholds_health(who) and user.department:  # the reference its topic carries
        data["reference"] = domain.reference(service.settings.reference_key, user.department, ticket.ticket_id)
    return domain.view(who, data, domain.sensitive(ticket.trigger, ticket.facts, ticket.description))


def _history(ticket: Ticket, rows: list[TicketLog], user: Principal) -> list[dict[str, Any]]:
    who = actor(user)
    notes = domain.shows_notes(who)  # what was said may be health data
    hidden = {ticket.resident_id, ticket.reported_by} - {None} if domain.withholds_health(who) else set()
    # A building lead is not told who holds a sensitive ticket (it would say what it is about).
    anonymous = who.role == "building_lead" and domain.sensitive(ticket.trigger, ticket.facts, ticket.description)
    return [
        {**r.model_dump(), **({} if notes else {"note": None}), **({"by": "—"} if r.by in hidden else {}),
         **({"by": "—", "owner": "—"} if anonymous else {})}
        for r in rows
    ]  # fmt: skip


class TicketIn(RequestModel):
    category: str = Field(
        max_length=40,
        description="routes the ticket: complaint, isolation_difficulty, health_concern, building_maintenance, public_order (GET /rules)",
    )
    description: str = Field(min_length=1, max_length=2000)
    resident_id: str | None = Field(default=None, max_length=40)
    building_id: str | None = Field(default=None, max_length=40)
    grid_id: str | None = Field(default=None, max_length=40)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    priority: Priority | None = None
    owner: str | None = Field(
        default=None,
        max_length=100,
        description="command staff only: a person id (GET /directory/people) instead of the rule's owner",
    )
    resolve_by: AwareDatetime | None = Field(
        default=None, description="command staff only: the deadline instead of the SLA's"
    )


@router.post("/tickets", status_code=status.HTTP_201_CREATED, response_model=TicketOut, tags=["tickets"])
async def report_problem(body: TicketIn, user: CurrentUser, service: Service, request: Request):
    """A problem reported by hand (a complaint, an isolated household's difficulty, ...),
    routed by the same rules as events. A resident's report is about themselves; a named
    resident is placed where the register says they live. At most
    COMMAND_REPORT_RATE_PER_MINUTE a minute per reporter (429 with Retry-After)."""
    if user.role != Role.admin:
        request.app.state.report_rate.check(user.sub)
    ticket = await service.report_by_hand(actor(user), **body.model_dump())
    return _out(ticket, service, user)


@router.get("/tickets", response_model=list[TicketOut], tags=["tickets"])
async def list_tickets(
    request: Request,
    user: CurrentUser,
    service: Service,
    stage: Annotated[
        str | None, Query(description="discovered, responding, resolved, closed, reopened, or open (not closed)")
    ] = None,
    owner: Annotated[str | None, Query(description="a person id, or `me`")] = None,
    kind: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
):
    """Tickets you may see, newest first: staff see all, a partner its department's, a grid
    worker its grids' and its own, a resident only tickets about themselves."""
    rows = await service.tickets(
        actor(user),
        stage=stage,
        owner=owner,
        kind=kind,
        department=department,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    answers = [_out(t, service, user) for t in rows]
    await service.privacy.tickets_read(request, user, answers)
    return answers


@router.get("/tickets/{ticket_id}", response_model=TicketDetail, tags=["tickets"])
async def get_ticket(ticket_id: TicketId, request: Request, user: CurrentUser, service: Service):
    """One ticket with its history: every transition, who and when."""
    ticket, history = await service.ticket(actor(user), ticket_id)
    answer = {**_out(ticket, service, user), "history": _history(ticket, history, user)}
    await service.privacy.tickets_read(request, user, [answer])
    return answer


class AcknowledgeIn(RequestModel):
    note: str | None = Field(default=None, max_length=2000)


class ResolveIn(RequestModel):
    resolution: str = Field(min_length=1, max_length=2000)


class FeedbackIn(RequestModel):
    satisfaction: int = Field(ge=1, le=5, description="1–5; 1 or 2 reopens the ticket")
    comment: str | None = Field(default=None, max_length=2000)


class ReassignIn(RequestModel):
    owner: str = Field(min_length=1, max_length=60, description="a person id from GET /directory/people")
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/tickets/{ticket_id}/acknowledge", response_model=TicketOut, tags=["tickets"])
async def acknowledge(ticket_id: TicketId, user: CurrentUser, service: Service, body: AcknowledgeIn | None = None):
    """discovered or reopened → responding. 409 (with what is allowed) from any other stage."""
    return _out(await service.acknowledge(actor(user), ticket_id, body.note if body else None), service, user)


@router.post("/tickets/{ticket_id}/resolve", response_model=TicketOut, tags=["tickets"])
async def resolve(ticket_id: TicketId, body: ResolveIn, user: CurrentUser, service: Service):
    """responding → resolved, with what was done."""
    return _out(await service.resolve(actor(user), ticket_id, body.resolution), service, user)


@router.post("/tickets/{ticket_id}/feedback", response_model=TicketOut, tags=["tickets"])
async def feedback(ticket_id: TicketId, body: FeedbackIn, user: CurrentUser, service: Service):
    """resolved → closed (satisfaction 3–5) or reopened (1–2). From the resident, or recorded
    on their behalf by a grid worker or staff."""
    return _out(await service.feedback(actor(user), ticket_id, body.satisfaction, body.comment), service, user)


@router.post("/tickets/{ticket_id}/reassign", response_model=TicketOut, tags=["tickets"])
async def reassign(ticket_id: TicketId, body: ReassignIn, user: CurrentUser, service: Service):
    """Give the ticket to another person in the directory (their department follows)."""
    return _out(await service.reassign(actor(user), ticket_id, body.owner, body.reason), service, user)


class NoteIn(RequestModel):
    note: str = Field(min_length=1, max_length=2000)


@router.post("/tickets/{ticket_id}/notes", response_model=TicketOut, tags=["tickets"])
async def add_note(ticket_id: TicketId, body: NoteIn, user: CurrentUser, service: Service):
    """A note in the ticket's history (`action: note`), from anyone who may work on it, in
    any stage; the ticket itself does not change and no event is published."""
    return _out(await service.note(actor(user), ticket_id, body.note), service, user)


class SharedOut(BaseModel):
    type: str = Field(description="the message type on partner.<department>.v1, e.g. PropertyTicketShared")
    data: dict[str, Any] = Field(description="the latest message's data: exactly the fields the topic carries")
    allowed: list[str] = Field(description="what you may do next: acknowledge, resolve (your department's own tickets)")


@router.get("/partner/tickets", response_model=list[SharedOut], tags=["partners"])
async def partner_tickets(
    user: Annotated[Principal, Depends(require(Role.partner, Role.command))],
    service: Service,
    department: Annotated[str | None, Query(description="staff: whose inbox; a partner reads its own")] = None,
    finished: Annotated[bool, Query(description="resolved and closed tickets instead of open ones")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
):
    """A partner desk's inbox without a Kafka consumer: each ticket its topic
    `partner.<department>.v1` tells of, as the topic's latest message about it says (the
    same minimised fields; property and police never get a health field), open ones most
    urgent first. Tickets only shared with the department are information: nothing is allowed."""
    if user.role == Role.partner:
        if department not in (None, user.department):
            raise Forbidden("a partner reads its own department's inbox")
        department = user.department
    if not department:
        raise Invalid("give department: health, property or police")
    me = actor(user)
    out = []
    for ticket in await service.shared_with(department, finished=finished, limit=limit):
        message = changes.partner_message(ticket, department, ticket.updated_at, service.settings.reference_key)
        if message is None:
            continue
        workable = domain.can_see(me, changes.scope(ticket)) and domain.can_work(me, changes.scope(ticket))
        next_steps = domain.TRANSITIONS.get(ticket.stage, {})
        allowed = [a for a in ("acknowledge", "resolve") if workable and a in next_steps]
        out.append({"type": type(message).__name__, "data": message.model_dump(mode="json"), "allowed": allowed})
    return out


# -- meeting, figures, heat map -------------------------------------------------------------


@router.get("/agenda", tags=["meeting"], responses={200: {"content": {"text/markdown": {}}}})
async def agenda(
    _: Staff,
    service: Service,
    day: Annotated[date | None, Query(alias="date")] = None,
    format: Literal["json", "markdown"] = "json",
):
    """The daily meeting (每日例会): overdue tickets first, then what is new since the last
    meeting, then open tickets by department and owner, and the day's figures.
    `format=markdown` gives text to print or paste into a group chat."""
    result = await service.agenda(day or service.today())
    if format == "markdown":
        return PlainTextResponse(agenda_md.markdown(result, service.tz), media_type="text/markdown; charset=utf-8")
    return result


@router.get("/kpis", tags=["meeting"])
async def kpis(_: Staff, service: Service, day: Annotated[date | None, Query(alias="date")] = None) -> dict:
    """The day's figures: check-in completion, follow-up resolution rate, median minutes to
    respond and resolve, satisfaction, open tickets by stage, overdue, escalations."""
    return await service.figures(day or service.today())


@router.get("/heatmap", tags=["meeting"])
async def heatmap(
    user: Annotated[
        Principal, Depends(require(Role.command, Role.grid_worker, Role.dispatcher, Role.supplies_officer))
    ],
    service: Service,
    since: AwareDatetime | None = None,
    kind: Annotated[
        str | None, Query(description="comma-separated: fever, missed_checkin, request, complaint, ...")
    ] = None,
    resolution: Annotated[int | None, Query(description="H3 resolution, at most COMMAND_H3_RESOLUTION")] = None,
) -> dict:
    """GeoJSON FeatureCollection of H3 cells with counts of problems since `since`
    (default: the last 24 hours, at most COMMAND_HEATMAP_MAX_DAYS back), so staff see where
    problems cluster. A grid worker sees the cells of their grids; health kinds are shown to
    command staff and grid workers only, and a cell with fewer than COMMAND_HEATMAP_MIN_COUNT
    of a health kind is left out."""
    since = since or service.clock.now() - timedelta(days=1)
    kinds = [k.strip() for k in kind.split(",") if k.strip()][:50] if kind else None
    return await service.heatmap(since, kinds, resolution, actor(user))


@router.post("/escalations/run", tags=["meeting"])
async def run_escalations(_: Staff, service: Service) -> dict:
    """Escalate overdue tickets now (the job does it every COMMAND_JOBS_INTERVAL_S)."""
    return {"escalated": await service.escalate_overdue()}


# -- configuration an admin edits ---------------------------------------------------------


class PriorityRaiseIn(RequestModel):
    field: str = Field(max_length=60)
    priority: Priority
    at_least: float | None = None
    any_of: list[str] = Field(default_factory=list, max_length=50)


class RuleIn(RequestModel):
    kind: str = Field(max_length=40)
    department: str = Field(max_length=40)
    owner_by: Literal["grid", "building", "department"]
    priority: Priority
    title: str = Field(min_length=1, max_length=300)
    action: str | None = Field(default=None, max_length=500)
    raise_priority: list[PriorityRaiseIn] = Field(default_factory=list, max_length=20)
    also_share: dict[str, Annotated[str, Field(max_length=500)]] = Field(default_factory=dict, max_length=10)
    enabled: bool = True


@router.get("/rules", tags=["configuration"])
async def rules(_: Staff, service: Service) -> list[dict]:
    """How events (`event:<Type>`) and hand reports (`category:<name>`) become tickets."""
    config = await service.config()
    return [_rule_out(r) for r in sorted(config.rules.values(), key=lambda r: r.trigger)]


@router.put("/rules/{trigger}", tags=["configuration"])
async def put_rule(trigger: str, body: RuleIn, user: Admin, service: Service) -> dict:
    """Create or change a rule; takes effect within COMMAND_CONFIG_CACHE_S on every replica."""
    rule = defaults.rule({**body.model_dump(), "trigger": trigger})
    await service.save_rule(rule, user.sub)
    return _rule_out(rule)


class SlaIn(RequestModel):
    respond_minutes: int = Field(gt=0, le=525_600)
    resolve_minutes: int = Field(gt=0, le=525_600)
    resolve_same_day: bool = False


@router.get("/sla", tags=["configuration"])
async def sla(_: Staff, service: Service) -> list[dict]:
    config = await service.config()
    return [vars(s) for s in sorted(config.sla, key=lambda s: (s.kind, s.priority))]


@router.put("/sla/{kind}/{priority}", tags=["configuration"])
async def put_sla(kind: str, priority: str, body: SlaIn, _: Admin, service: Service) -> dict:
    """Deadlines for a kind and priority (`*` for any); applies to tickets opened after."""
    entry = domain.Sla(kind, priority, body.respond_minutes, body.resolve_minutes, body.resolve_same_day)
    await service.save_sla(entry)
    return vars(entry)


class PersonIn(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    role: str = Field(min_length=1, max_length=40, description="grid_worker owns the tickets of its grids")
    department: str = Field(max_length=40)
    phone: str | None = Field(default=None, max_length=30)
    supervisor_id: str | None = Field(default=None, max_length=60)
    grid_ids: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=200)
    building_ids: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=1000)
    active: bool = True


@router.get("/directory/people", tags=["configuration"])
async def people(
    user: Annotated[
        Principal,
        Depends(require(Role.command, Role.grid_worker, Role.partner, Role.dispatcher, Role.supplies_officer)),
    ],
    service: Service,
) -> list[dict]:
    """The owner directory: people, roles, departments, grids, supervisors. Partners see it
    without phone numbers."""
    config = await service.config()
    phones = user.role != Role.partner
    return [_person_out(p, phones) for p in sorted(config.people.values(), key=lambda p: p.person_id)]


@router.put("/directory/people/{person_id}", tags=["configuration"])
async def put_person(person_id: str, body: PersonIn, _: Admin, service: Service) -> dict:
    person = defaults.person({**body.model_dump(), "person_id": person_id})
    await service.save_person(person)
    return _person_out(person)


class DepartmentIn(RequestModel):
    name: str = Field(min_length=1, max_length=100)
    partner: bool = False
    default_owner: str | None = Field(default=None, max_length=60)


@router.get("/directory/departments", tags=["configuration"])
async def departments(_: Staff, service: Service) -> list[dict]:
    config = await service.config()
    return [vars(d) for d in sorted(config.departments.values(), key=lambda d: d.department_id)]


@router.put("/directory/departments/{department_id}", tags=["configuration"])
async def put_department(department_id: str, body: DepartmentIn, _: Admin, service: Service) -> dict:
    if not department_id.isidentifier():
        raise Invalid(f"department id {department_id!r} must be a plain identifier (letters, digits, _)")
    department = domain.Department(department_id, body.name, body.partner, body.default_owner)
    await service.save_department(department)
    return vars(department)


@router.post("/config/defaults", tags=["configuration"])
async def restore_defaults(_: Admin, service: Service) -> dict:
    """Add back any default department, person, rule or SLA row that is missing; edited rows stay."""
    return {"added": await service.restore_defaults()}


def _rule_out(rule: domain.Rule) -> dict:
    return {
        "trigger": rule.trigger, "kind": rule.kind, "department": rule.department, "owner_by": rule.owner_by,
        "priority": rule.priority, "title": rule.title, "action": rule.action,
        "raise_priority": [
            {"field": r.field, "priority": r.priority, "at_least": r.at_least, "any_of": list(r.any_of)}
            for r in rule.raise_priority
        ],
        "also_share": dict(rule.also_share), "enabled": rule.enabled,
    }  # fmt: skip


def _person_out(person: domain.Person, phones: bool = True) -> dict:
    out = {**vars(person), "grid_ids": list(person.grid_ids), "building_ids": list(person.building_ids)}
    if not phones:
        out["phone"] = None
    return out
