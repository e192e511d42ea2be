"""The supplies officer's page: stock against its lines, receive and issue, alerts, and the
suggested transfers between depots to accept. Supplies decides everything (what is below
its line, which batch goes first, what a transfer moves); the page shows it and sends what
the officer does."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from common.auth import Role
from portal.clients import ServiceError
from portal.models import PortalSession
from portal.web import _SignIn, redirect, render, same_origin, services_of, session_or_none

router = APIRouter()
ROLES = (Role.supplies_officer.value, Role.command.value, Role.admin.value)


async def officer_session(request: Request) -> PortalSession:
    session = await session_or_none(request)
    if session is None or session.household_id:
        raise _SignIn()
    if session.role not in ROLES:
        raise ServiceError("portal", 403, "ops.forbidden")
    return session


Officer = Annotated[PortalSession, Depends(officer_session)]


def _quantity(raw: str) -> float:
    try:
        value = float(raw.strip().replace(",", "."))
    except ValueError:
        raise ServiceError("portal", 422, "ops.quantity_invalid") from None
    if not value > 0:
        raise ServiceError("portal", 422, "ops.quantity_invalid")
    return value


@router.get("/supplies", response_class=HTMLResponse, include_in_schema=False)
async def supplies_page(request: Request, session: Officer, done: str | None = None, error: str | None = None):
    services = services_of(request)
    stock = await services.call(session, "supplies", "GET", "/stock")
    alerts = await services.call(session, "supplies", "GET", "/stock/alerts")
    suggestions = await services.call(session, "supplies", "GET", "/stock/transfers/suggestions")
    items = await services.call(session, "supplies", "GET", "/items", params={"limit": 500})
    depots = await services.call(session, "supplies", "GET", "/depots", params={"limit": 500})
    names = {d["depot_id"]: d["name"] for d in depots}
    return render(
        request,
        "ops_supplies.html",
        stock=stock["stock"],
        alerts=alerts["alerts"],
        suggestions=suggestions,
        items=items,
        depots=depots,
        depot_name=lambda depot_id: names.get(depot_id, depot_id),
        item_name={i["item_id"]: i["name"] for i in items},
        done=done,
        error=error,
    )


async def _act(request: Request, session: PortalSession, path: str, body: dict, done: str):
    same_origin(request)
    try:
        await services_of(request).call(session, "supplies", "POST", path, json=body)
    except ServiceError as exc:
        return redirect(f"/supplies?error={quote(exc.detail)}")
    return redirect(f"/supplies?done={done}")


@router.post("/supplies/receipts", include_in_schema=False)
async def receive(
    request: Request,
    session: Officer,
    depot_id: Annotated[str, Form()],
    item_id: Annotated[str, Form()],
    quantity: Annotated[str, Form()],
    batch: Annotated[str, Form()] = "",
    expires_on: Annotated[str, Form()] = "",
    source: Annotated[str, Form()] = "",
):
    """Stock received into a depot (a batch, with its expiry when the item tracks one)."""
    try:
        amount = _quantity(quantity)
    except ServiceError as exc:
        return redirect(f"/supplies?error={exc.detail}")
    body = {
        "depot_id": depot_id,
        "item_id": item_id,
        "quantity": amount,
        "batch": batch.strip() or None,
        "expires_on": expires_on or None,
        "source": source or None,
    }
    return await _act(request, session, "/stock/receipts", body, "received")


@router.post("/supplies/issues", include_in_schema=False)
async def issue(
    request: Request,
    session: Officer,
    depot_id: Annotated[str, Form()],
    item_id: Annotated[str, Form()],
    quantity: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
):
    """Stock issued (first-expiring batch first); supplies refuses more than is available."""
    try:
        amount = _quantity(quantity)
    except ServiceError as exc:
        return redirect(f"/supplies?error={exc.detail}")
    body = {"depot_id": depot_id, "item_id": item_id, "quantity": amount, "reason": reason.strip() or None}
    return await _act(request, session, "/stock/issues", body, "issued")


@router.post("/supplies/suggestions/{suggestion_id}/accept", include_in_schema=False)
async def accept_suggestion(suggestion_id: int, request: Request, session: Officer):
    """Carry out a suggested transfer as supplies proposed it."""
    open_ = await services_of(request).call(session, "supplies", "GET", "/stock/transfers/suggestions")
    suggestion = next((s for s in open_ if s["suggestion_id"] == suggestion_id), None)
    if suggestion is None:
        return redirect("/supplies?error=ops.suggestion_gone")
    body = {
        "item_id": suggestion["item_id"],
        "from_depot_id": suggestion["from_depot_id"],
        "to_depot_id": suggestion["to_depot_id"],
        "quantity": suggestion["quantity"],
        "suggestion_id": suggestion_id,
    }
    return await _act(request, session, "/stock/transfers", body, "transferred")


@router.post("/supplies/rebalance", include_in_schema=False)
async def rebalance(request: Request, session: Officer):
    """Ask supplies for suggestions now (its job also does it periodically)."""
    return await _act(request, session, "/stock/rebalance", {}, "rebalanced")
