"""The operator's admin calls."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from common.auth import Principal, Role, require
from common.errors import Invalid
from portal import domain
from portal.web import (
    _pdf,
    portal_of,
    services_of,
)

router = APIRouter()

Admin = Annotated[Principal, Depends(require(Role.admin))]


class LinkIn(BaseModel):
    renew: bool = Field(
        False, description="revoke the current code and issue a new one (ends the household's sessions)"
    )


@router.post("/admin/households/{household_id}/link", tags=["admin"])
async def admin_household_link(household_id: str, body: LinkIn, request: Request, user: Admin) -> dict:
    """The household's sign-in link (`household_id` may be a resident's id: their household)."""
    household = await services_of(request).call_as(user, "checkin", "GET", f"/households/{household_id}")
    portal = portal_of(request)
    if body.renew:
        await portal.end_sessions_of(household_id=household["household_id"])
    url = await portal.household_link(household["household_id"], renew=body.renew)
    return {"household_id": household["household_id"], "url": url}


class InvitationIn(BaseModel):
    role: Role
    sub: str = Field(min_length=1, max_length=60)
    phone: str | None = None
    grid_ids: list[str] = Field(default_factory=list)
    building_ids: list[str] = Field(default_factory=list)
    department: str | None = None


@router.post("/admin/invitations", status_code=201, tags=["admin"])
async def admin_invite(body: InvitationIn, request: Request, _: Admin) -> dict:
    """A one-time sign-in link for a staff member, volunteer, building lead or partner desk."""
    scope = domain.Scope(body.sub, body.role.value, tuple(body.grid_ids), tuple(body.building_ids), body.department)
    try:
        url = await portal_of(request).invite(scope, body.phone)
    except Invalid as exc:
        raise HTTPException(422, "phone is not a phone number") from exc
    return {"sub": body.sub, "role": body.role.value, "url": url}


@router.post("/admin/sessions/revoke", tags=["admin"])
async def admin_revoke(request: Request, _: Admin, sub: str | None = None, household_id: str | None = None) -> dict:
    """End every live session of a person or a household; their tokens stop working at once."""
    if not sub and not household_id:
        raise HTTPException(422, "give sub or household_id")
    return {"ended": await portal_of(request).end_sessions_of(sub=sub, household_id=household_id)}


@router.get("/admin/buildings/{building_id}/qr.pdf", tags=["admin"], response_class=Response)
async def admin_qr_sheet(building_id: str, request: Request, user: Admin) -> Response:
    building = await services_of(request).call_as(
        user, "checkin", "GET", "/households", params={"building_id": building_id}
    )
    if not building["households"]:
        raise HTTPException(404, f"no household in building {building_id}")
    return await _pdf(request, building)
