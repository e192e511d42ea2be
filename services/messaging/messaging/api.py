"""Messaging HTTP routes: parse, authorise, call the use case, shape the answer.

`POST /inbound/<channel>` is the gateways' door: no bearer token, a Standard Webhooks
signature instead (see gateway.py); 401 when it is missing or wrong.
"""

from __future__ import annotations

import hmac
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, ValidationError

from common.auth import CurrentUser, Principal, Role, require
from messaging.gateway import BadSignature, verify
from messaging.notices import NoticeDraft
from messaging.service import MessagingService

router = APIRouter()
PAGES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())


async def get_service(request: Request) -> MessagingService:
    return request.app.state.service


Service = Annotated[MessagingService, Depends(get_service)]
Staff = Annotated[Principal, Depends(require(Role.command))]
Channel = Literal["sms", "voice", "chat", "page"]


class MessageOut(BaseModel):
    message_id: str
    kind: str
    channel: str
    recipient: str
    status: str
    text: str
    ticket_id: str | None
    request_id: str | None
    attempts: int
    last_error: str | None
    fallback_of: str | None
    created_at: datetime
    sent_at: datetime | None
    accepted_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    replied_at: datetime | None


def message_out(m) -> MessageOut:
    return MessageOut(
        message_id=m.message_id, kind=m.kind, channel=m.channel, recipient=m.recipient_id, status=m.status, text=m.text,
        ticket_id=m.ticket_id, request_id=m.request_id, attempts=m.attempts, last_error=m.last_error,
        fallback_of=m.fallback_of, created_at=m.created_at, sent_at=m.sent_at, accepted_at=m.accepted_at,
        delivered_at=m.delivered_at, failed_at=m.failed_at, replied_at=m.replied_at,
    )  # fmt: skip


@router.get("/messages", response_model=list[MessageOut], tags=["messages"])
async def list_messages(
    user: CurrentUser,
    service: Service,
    recipient: str | None = None,
    ticket_id: str | None = None,
    request_id: str | None = None,
    kind: str | None = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    """The record, newest first: staff see every message; a grid worker their grids'
    residents' and a building lead their buildings'; everyone their own."""
    rows = await service.messages(user, recipient=recipient, ticket_id=ticket_id, request_id=request_id, kind=kind,
                                  status=status_, limit=limit)  # fmt: skip
    return [message_out(m) for m in rows]


class ReplyIn(BaseModel):
    message_id: str = Field(min_length=1, max_length=100, description="the gateway's id of this reply: it applies once")
    from_: str = Field(
        alias="from", min_length=1, max_length=100, description="the phone number as registered (chat: the person's id)"
    )
    text: str = Field(max_length=2000)


@router.post("/inbound/{channel}", tags=["replies"], openapi_extra={"security": []})
async def inbound(channel: Literal["sms", "voice", "chat"], request: Request, service: Service) -> dict:
    """A reply from a gateway, signed with MESSAGING_GATEWAY_SECRET (webhook-id,
    webhook-timestamp, webhook-signature). Body: {"message_id", "from", "text"}."""
    body = await _signed_body(request, service)
    try:
        reply = ReplyIn.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f'body must be JSON {{"message_id", "from", "text"}}: {exc}'
        ) from exc
    return await service.receive_reply(channel, reply.message_id, reply.from_, reply.text)


async def _signed_body(request: Request, service: MessagingService) -> bytes:
    """The body of a gateway's call, once its Standard Webhooks signature is checked (401 if not)."""
    body = await request.body()
    settings = service.settings
    try:
        verify(settings.gateway_secret, request.headers, body, time.time(), settings.signature_tolerance_s)
    except BadSignature as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from exc
    return body


class AlertmanagerIn(BaseModel):
    """Alertmanager's webhook body (version 4); only `alerts` is read."""

    alerts: list[dict] = Field(default_factory=list, max_length=1000)


@router.post("/alerts", tags=["alerts"], openapi_extra={"security": []})
async def alerts(body: AlertmanagerIn, request: Request, service: Service) -> dict:
    """Prometheus' alerts routed by Alertmanager (deploy/prometheus/alertmanager.yml) to the
    staff chat group; authenticated with `Authorization: Bearer <MESSAGING_ALERTS_TOKEN>`."""
    token = service.settings.alerts_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "send Authorization: Bearer <MESSAGING_ALERTS_TOKEN>")
    return {"queued": await service.take_alerts(body.alerts)}


class ContactIn(BaseModel):
    role: str = Field("resident", max_length=20)
    name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, max_length=40)
    grid_id: str | None = Field(None, max_length=50)
    building_id: str | None = Field(None, max_length=50)
    tags: list[str] = Field(default_factory=list)
    preferred_channel: Channel | None = None


class PreferenceIn(BaseModel):
    preferred_channel: Channel | None = Field(None, description="unset: the default for the kind of message")


def contact_out(c) -> dict:
    return {"person_id": c.person_id, "role": c.role, "name": c.name, "phone": c.phone, "grid_id": c.grid_id,
            "building_id": c.building_id, "tags": c.tags, "preferred_channel": c.preferred_channel}  # fmt: skip


@router.put("/contacts/{person_id}", tags=["contacts"])
async def put_contact(person_id: str, body: ContactIn, user: Staff, service: Service) -> dict:
    """Whom messages reach besides residents (who come from check-in's registrations):
    volunteers' and staff's phones and channels."""
    return contact_out(await service.save_contact(person_id, **body.model_dump()))


@router.put("/contacts/{person_id}/preferences", tags=["contacts"])
async def put_preferences(person_id: str, body: PreferenceIn, user: CurrentUser, service: Service) -> dict:
    """A person's preferred channel: set by themselves or by staff."""
    if not user.is_staff and user.sub != person_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you may set only your own preferences")
    await service.contact(person_id)  # 404 for someone messaging does not know
    return contact_out(await service.save_contact(person_id, preferred_channel=body.preferred_channel))


class ReceiptIn(BaseModel):
    message_id: str = Field(min_length=1, max_length=32, description="our message_id, as the outbound call carried it")
    status: Literal["delivered", "failed"]
    error: str | None = Field(None, max_length=500)


@router.post("/receipts/{channel}", tags=["replies"], openapi_extra={"security": []})
async def receipt(channel: Literal["sms", "voice", "chat"], request: Request, service: Service) -> dict:
    """A gateway's delivery receipt, signed like a reply: {"message_id", "status":
    "delivered" | "failed", "error"}. A failed SMS to an elderly resident becomes a call."""
    body = await _signed_body(request, service)
    try:
        given = ReceiptIn.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f'body must be JSON {{"message_id", "status", "error"}}: {exc}'
        ) from exc
    return await service.record_receipt(channel, given.message_id, given.status, given.error)


# -- notices (宣传) -----------------------------------------------------------------------


class NoticeIn(BaseModel):
    headline_zh: str = Field(min_length=1, max_length=30, description="the headline, Chinese")
    body_zh: str = Field(min_length=1, max_length=300, description="what residents should know or do, Chinese")
    headline_en: str | None = Field(None, max_length=80)
    body_en: str | None = Field(None, max_length=800)
    building_ids: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=500)
    grid_ids: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=100)
    tags: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, max_length=20, description="residents carrying any of these tags (none: all)"
    )
    channels: list[Literal["text", "voice"]] = Field(
        default_factory=lambda: ["text"],
        min_length=1,
        description="text: SMS (the page without a phone); voice: a call",
    )
    urgent: bool = Field(False, description="passes quiet hours and the rate limit")


def notice_out(n) -> dict:
    return {"notice_id": n.notice_id, "headline_zh": n.headline_zh, "headline_en": n.headline_en, "body_zh": n.body_zh,
            "body_en": n.body_en, "building_ids": n.building_ids, "grid_ids": n.grid_ids, "tags": n.tags,
            "channels": n.channels, "urgent": n.urgent, "sent_by": n.sent_by, "recipients": n.recipients,
            "households": n.households, "created_at": n.created_at, "poster": f"/notices/{n.notice_id}/poster",
            "reach": f"/notices/{n.notice_id}/reach"}  # fmt: skip


@router.post("/notices", status_code=status.HTTP_201_CREATED, tags=["notices"])
async def send_notice(body: NoticeIn, user: Staff, service: Service) -> dict:
    """Send a notice to the residents of buildings or grids (either), carrying any of the
    tags (if given), by text and/or voice; its poster is at `poster`, its reach at `reach`."""
    draft = NoticeDraft(body.headline_zh.strip(), body.body_zh.strip(), body.headline_en, body.body_en,
                        tuple(body.building_ids), tuple(body.grid_ids), tuple(body.tags), tuple(dict.fromkeys(body.channels)),
                        body.urgent)  # fmt: skip
    return notice_out(await service.send_notice(user, draft))


@router.get("/notices", tags=["notices"])
async def list_notices(user: CurrentUser, service: Service, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list:
    """The latest notices, for staff and building leads."""
    _may_see_notices(user)
    return [notice_out(n) for n in await service.notices(limit)]


@router.get("/notices/{notice_id}/reach", tags=["notices"])
async def notice_reach(notice_id: str, user: CurrentUser, service: Service, building_id: str | None = None) -> dict:
    """The notice's households, how many were reached and the ones not reached yet (with
    their members' names): staff see every building; a building lead only their own."""
    return await service.reach(user, notice_id, building_id)


@router.get("/notices/{notice_id}/poster", response_class=HTMLResponse, tags=["notices"])
async def notice_poster(notice_id: str, user: CurrentUser, service: Service) -> HTMLResponse:
    """The notice as an A4 poster to print (HTML with print CSS): for staff and building leads."""
    _may_see_notices(user)
    notice = await service.notice(notice_id)
    html = PAGES.get_template("poster.html").render(notice=notice, day=notice.created_at.astimezone(service.tz))
    return HTMLResponse(html)


def _may_see_notices(user: Principal) -> None:
    if not (user.is_staff or user.role == Role.building_lead):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "notices are for staff and building leads")


@router.get("/outbox", response_class=HTMLResponse, tags=["development"], include_in_schema=False)
async def outbox(service: Service, recipient: str | None = None) -> HTMLResponse:
    """The development outbox: the latest messages as their recipients read them. Off in production."""
    if service.settings.environment == "production":
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the development outbox is off in production")
    staff = Principal(sub="outbox", role=Role.command)
    rows = await service.messages(staff, recipient=recipient, limit=200)
    html = PAGES.get_template("outbox.html").render(messages=rows, recipient=recipient, tz=service.tz)
    return HTMLResponse(html)
