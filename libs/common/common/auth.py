"""Bearer JWTs with the roles of DESIGN.md, and the FastAPI dependencies that read them.

A token's subject is the person's id across services (`resident_id` for residents,
`volunteer_id` = `member_id` for volunteers). Scopes narrow what a role sees: a grid
worker's grids, a building lead's buildings, a partner's department.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from common.vocabulary import Role

ISSUER = "firstline"
ALGORITHM = "HS256"


# Roles that see the whole community (no grid, building or department scope).
STAFF = frozenset({Role.command, Role.admin})


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)  # verified tokens are cached and shared between requests

    sub: str
    role: Role
    grid_ids: list[str] = Field(default_factory=list)
    building_ids: list[str] = Field(default_factory=list)
    department: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def can_see_grid(self, grid_id: str | None) -> bool:
        if self.is_staff:
            return True
        if self.role == Role.grid_worker:
            return grid_id in self.grid_ids
        return False

    def can_act_for_building(self, building_id: str | None) -> bool:
        if self.is_staff:
            return True
        if self.role == Role.building_lead:
            return building_id in self.building_ids
        return False


def issue_token(
    secret: str,
    *,
    sub: str,
    role: Role | str,
    now: datetime,
    ttl: timedelta = timedelta(hours=12),
    grid_ids: Iterable[str] = (),
    building_ids: Iterable[str] = (),
    department: str | None = None,
) -> str:
    claims = {
        "iss": ISSUER,
        "sub": sub,
        "role": Role(role).value,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "grid_ids": list(grid_ids),
        "building_ids": list(building_ids),
    }
    if department:
        claims["department"] = department
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


class InvalidToken(Exception):
    pass


def read_token(secret: str, token: str) -> Principal:
    principal, expires = _verified(secret, token)
    if time.time() >= expires:
        raise InvalidToken("token expired")
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """Check a token's signature once; the same string stays valid until it expires."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "sub"]})
        return Principal.model_validate(claims), float(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token expired") from exc
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise InvalidToken(f"invalid token: {exc}") from exc


class BearerPrincipal(HTTPBearer):
    """The caller, from `Authorization: Bearer <JWT>`: 401 without a valid token.

    It is FastAPI's HTTPBearer scheme (so OpenAPI documents the routes as secured) whose
    call returns the verified `Principal` itself: one dependency per request, not two, on
    every authenticated route (each costs the request ~15% of a trivial endpoint's time)."""

    def __init__(self) -> None:
        super().__init__(scheme_name="HTTPBearer", auto_error=False, description="a FirstLine JWT (`firstline token --help`)")

    # `async def` so FastAPI runs it on the event loop, not in its thread pool.
    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return authenticate(request)


def authenticate(request: Request) -> Principal:
    """The verified caller of a request; 401 without a valid bearer token. What `CurrentUser`
    resolves to, for a route that cannot afford a dependency (see `BEARER_AUTH`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <JWT> (see `firstline token`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return read_token(request.app.state.jwt_secret, token.strip())
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


current_principal = BearerPrincipal()

# For a route that calls `authenticate(request)` itself: documents in OpenAPI the security
# a `CurrentUser` parameter would have documented (`openapi_extra=BEARER_AUTH`).
BEARER_AUTH = {"security": [{"HTTPBearer": []}]}

CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(*roles: Role) -> BearerPrincipal:
    """A dependency that admits only these roles (admin always): 401 without a token, 403
    for another role."""
    return _RoleRequired(frozenset(roles) | {Role.admin})


class _RoleRequired(BearerPrincipal):
    def __init__(self, allowed: frozenset[Role]) -> None:
        super().__init__()
        self.allowed = allowed

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        user = await super().__call__(request)
        if user.role not in self.allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {user.role.value!r} may not do this; allowed: {', '.join(sorted(r.value for r in self.allowed))}",
            )
        return user
