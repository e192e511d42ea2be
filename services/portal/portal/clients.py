"""The five services over HTTP, on a signed-in person's behalf: each call carries a token
for that service's audience, signed for the session (a household's, as the member it is
for). The answers are the services' own; the portal adds no rule of theirs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from common.auth import Principal
from portal.models import PortalSession
from portal.service import PortalService
from portal.settings import PortalSettings

MEMBERS_TTL_S = 60.0


class ServiceError(Exception):
    """A service refused or failed: its status and its own message."""

    def __init__(self, service: str, status_code: int, detail: str) -> None:
        super().__init__(f"{service} answered {status_code}: {detail}")
        self.service = service
        self.status_code = status_code
        self.detail = detail


class Services:
    def __init__(
        self,
        settings: PortalSettings,
        portal: PortalService,
        transport: httpx.AsyncBaseTransport | None = None,
        on_call=None,
    ) -> None:
        self.portal = portal
        self.on_call = on_call or (lambda service, status: None)  # (service, "2xx" | "4xx" | "5xx" | "unreachable")
        self.urls = {
            "checkin": settings.checkin_url,
            "supplies": settings.supplies_url,
            "dispatch": settings.dispatch_url,
            "timebank": settings.timebank_url,
            "command": settings.command_url,
            "messaging": settings.messaging_url,
        }
        # Who is in a household changes with the register, rarely: a check-in reuses the
        # member list the household's page (or an earlier check-in) read, for a minute.
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
        self.http = httpx.AsyncClient(timeout=settings.service_timeout_s, limits=limits, transport=transport)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        session: PortalSession,
        service: str,
        method: str,
        path: str,
        *,
        sub: str | None = None,
        json: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
    ) -> Any:
        token = self.portal.token(session, service, sub)
        try:
            response = await self.http.request(
                method,
                self.urls[service] + path,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
            )
        except httpx.HTTPError as exc:
            self.on_call(service, "unreachable")
            raise ServiceError(service, 503, f"{type(exc).__name__}: {exc}") from exc
        self.on_call(service, f"{response.status_code // 100}xx")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(service, response.status_code, detail if isinstance(detail, str) else str(detail))
        return response.json() if response.content else None

    async def call_as(self, user: Principal, service: str, method: str, path: str, **kwargs: Any) -> Any:
        """A call on behalf of a caller who came with a bearer token (an operator's admin call)."""
        session = PortalSession(
            session_id="",
            sub=user.sub,
            role=user.role.value,
            grid_ids=user.grid_ids,
            building_ids=user.building_ids,
            department=user.department,
            household_id=user.household_id,
            created_at=datetime.now(UTC),
            expires_at=datetime.now(UTC),
        )
        return await self.call(session, service, method, path, **kwargs)

    # -- what the pages need --------------------------------------------------------------

    async def household(self, session: PortalSession, household_id: str) -> dict:
        household = await self.call(session, "checkin", "GET", f"/households/{household_id}")
        if len(self._members) > 50_000:
            self._members.clear()
        self._members[session.session_id] = (
            time.monotonic() + MEMBERS_TTL_S,
            frozenset(m["resident_id"] for m in household["members"]),
        )
        return household

    async def members(self, session: PortalSession) -> frozenset[str]:
        """The resident ids of the session's household (cached for MEMBERS_TTL_S)."""
        cached = self._members.get(session.session_id)
        if cached is None or cached[0] < time.monotonic():
            await self.household(session, session.household_id)
            cached = self._members[session.session_id]
        return cached[1]

    async def building(self, session: PortalSession, building_id: str) -> dict:
        return await self.call(session, "checkin", "GET", "/households", params={"building_id": building_id})

    async def check_in(
        self,
        session: PortalSession,
        resident_id: str,
        temperature_c: float,
        symptoms: list[str],
        idempotency_key: str | None,
        *,
        as_member: bool,
    ) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"resident_id": resident_id, "temperature_c": temperature_c, "symptoms": symptoms}
        return await self.call(
            session, "checkin", "POST", "/checkins", sub=resident_id if as_member else None, json=body, headers=headers
        )

    async def items(self, session: PortalSession) -> list[dict]:
        return await self.call(session, "supplies", "GET", "/items")

    async def raise_request(
        self,
        session: PortalSession,
        resident_id: str,
        category: str,
        details: str,
        items: list[dict],
        *,
        as_member: bool,
    ) -> dict:
        body = {"resident_id": resident_id, "category": category, "details": details or None, "items": items}
        return await self.call(
            session, "dispatch", "POST", "/requests", sub=resident_id if as_member else None, json=body
        )

    async def requests_of(self, session: PortalSession, resident_id: str) -> list[dict]:
        return await self.call(
            session, "dispatch", "GET", "/requests", sub=resident_id, params={"resident_id": resident_id}
        )

    async def tickets_of(self, session: PortalSession, resident_id: str) -> list[dict]:
        return await self.call(session, "command", "GET", "/tickets", sub=resident_id)

    async def feedback(
        self, session: PortalSession, resident_id: str, ticket_id: str, satisfaction: int, comment: str | None
    ) -> dict:
        body = {"satisfaction": satisfaction, "comment": comment or None}
        return await self.call(session, "command", "POST", f"/tickets/{ticket_id}/feedback", sub=resident_id, json=body)

    async def balance(self, session: PortalSession, member_id: str) -> dict | None:
        try:
            return await self.call(session, "timebank", "GET", f"/members/{member_id}/balance", sub=member_id)
        except ServiceError as exc:
            if exc.status_code == 404:  # no account yet: no hours
                return None
            raise

    # -- the grid worker's and the volunteer's workbenches ------------------------------------

    async def followups(self, session: PortalSession) -> dict:
        """Who to call today in the worker's grids, in check-in's order (fever and symptoms,
        then most days missed, then special tags)."""
        return await self.call(session, "checkin", "GET", "/followups")

    async def grid_completion(self, session: PortalSession) -> dict:
        return await self.call(session, "checkin", "GET", "/stats/completion", params={"by": "grid"})

    async def open_tickets(self, session: PortalSession) -> list[dict]:
        """The open tickets the session may see (a grid worker: its grids' and its own)."""
        return await self.call(session, "command", "GET", "/tickets", params={"stage": "open", "limit": 1000})

    async def acknowledge(self, session: PortalSession, ticket_id: str, note: str) -> dict:
        return await self.call(session, "command", "POST", f"/tickets/{ticket_id}/acknowledge", json={"note": note})

    async def resolve(self, session: PortalSession, ticket_id: str, resolution: str) -> dict:
        return await self.call(
            session, "command", "POST", f"/tickets/{ticket_id}/resolve", json={"resolution": resolution}
        )

    async def report(
        self, session: PortalSession, category: str, description: str, resident_id: str, grid_id: str
    ) -> dict:
        body = {"category": category, "description": description, "resident_id": resident_id, "grid_id": grid_id}
        return await self.call(session, "command", "POST", "/tickets", json=body)

    async def grid_requests(self, session: PortalSession) -> list[dict]:
        """The requests of the worker's grids (dispatch scopes the list), soonest due first."""
        return await self.call(session, "dispatch", "GET", "/requests", params={"limit": 500})

    async def volunteer(self, session: PortalSession) -> dict:
        return await self.call(session, "dispatch", "GET", f"/volunteers/{session.sub}")

    async def queue(self, session: PortalSession) -> list[dict]:
        """The volunteer's own requests (dispatch answers a volunteer with their queue only)."""
        return await self.call(session, "dispatch", "GET", "/requests", params={"limit": 500})

    async def runs(self, session: PortalSession) -> list[dict]:
        return await self.call(session, "dispatch", "GET", f"/volunteers/{session.sub}/runs")

    async def run(self, session: PortalSession, run_id: str) -> dict:
        return await self.call(session, "dispatch", "GET", f"/runs/{run_id}")

    async def fulfil(self, session: PortalSession, request_id: str, service_minutes: int) -> dict:
        body = {"volunteer_id": session.sub, "service_minutes": service_minutes}
        return await self.call(session, "dispatch", "POST", f"/requests/{request_id}/fulfil", json=body)

    async def fail(self, session: PortalSession, request_id: str, reason: str) -> dict:
        body = {"volunteer_id": session.sub, "reason": reason}
        return await self.call(session, "dispatch", "POST", f"/requests/{request_id}/fail", json=body)

    async def ledger(self, session: PortalSession, member_id: str) -> list[dict]:
        """The member's latest ledger entries, newest first (none when they have no account yet)."""
        try:
            answer = await self.call(
                session, "timebank", "GET", f"/members/{member_id}/ledger", sub=member_id, params={"limit": 500}
            )
        except ServiceError as exc:
            if exc.status_code == 404:
                return []
            raise
        return answer["entries"]
