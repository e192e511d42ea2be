"""Bearer JWTs with the roles of DESIGN.md, and the FastAPI dependencies that read them.

A token's subject is the person's id across services (`resident_id` for residents,
`volunteer_id` = `member_id` for volunteers). Scopes narrow what a role sees: a grid
worker's grids, a building lead's buildings, a partner's department, a household.

Tokens are signed by the portal with an Ed25519 key (EdDSA, with `kid`) and live at most
15 minutes. Services hold no signing secret: a `Verifier` checks tokens against the
portal's JWKS (or an external OIDC issuer's), for its own audience, and refuses a token
whose session the portal has revoked (the `sid` claim against the portal's list of
revoked sessions, refreshed every second). `docs/portal.md` describes keys and rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from common.vocabulary import Role

log = logging.getLogger(__name__)

ISSUER = "firstline"
ALGORITHM = "EdDSA"
ACCEPTED_ALGORITHMS = ["EdDSA", "RS256", "ES256"]  # EdDSA is the portal's; the others for external OIDC issuers
MAX_TOKEN_LIFETIME = timedelta(minutes=15)
# Every audience of the stack: an operator's token (`firstline token`) names them all.
AUDIENCES = ("portal", "checkin", "supplies", "dispatch", "timebank", "command", "messaging")
# A new key is published this long before the portal signs with it, so every service's
# cached JWKS knows it first (they refresh more often than this).
KEY_PUBLISH_AHEAD = timedelta(seconds=90)


# Roles that see the whole community (no grid, building or department scope).
STAFF = frozenset({Role.command, Role.admin})


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)  # verified tokens are cached and shared between requests

    sub: str
    role: Role
    grid_ids: list[str] = Field(default_factory=list)
    building_ids: list[str] = Field(default_factory=list)
    department: str | None = None
    household_id: str | None = None  # a household's session acts for the household's members

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


# -- signing keys (the portal's, and the operator's where the portal's key file is) -------


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    created: datetime

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


class Keyring:
    """The Ed25519 keys in a directory (`<kid>.pem`, mode 0600). The newest key published
    for at least KEY_PUBLISH_AHEAD signs; every key in the directory is in the JWKS, so
    tokens signed by the previous key verify until it is retired."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._keys: list[SigningKey] = []
        self._seen: tuple[tuple[str, float], ...] = ()
        self._checked = 0.0

    @classmethod
    def ensure(cls, directory: Path | str) -> Keyring:
        """The keyring in `directory`, with a first key made if it has none."""
        keyring = cls(directory)
        if not keyring.keys():
            keyring.rotate(now=datetime.now(UTC) - KEY_PUBLISH_AHEAD)
        return keyring

    def keys(self) -> list[SigningKey]:
        # Re-read at most every two seconds: `firstline keys rotate` adds a file while the portal runs.
        if time.monotonic() - self._checked < 2.0 and self._keys:
            return self._keys
        self._checked = time.monotonic()
        files = sorted(self.directory.glob("*.pem")) if self.directory.is_dir() else []
        seen = tuple((f.name, f.stat().st_mtime) for f in files)
        if seen != self._seen:
            keys = []
            for f in files:
                private = serialization.load_pem_private_key(f.read_bytes(), password=None)
                if isinstance(private, Ed25519PrivateKey):
                    keys.append(SigningKey(f.stem, private, datetime.fromtimestamp(f.stat().st_mtime, UTC)))
            self._keys = sorted(keys, key=lambda k: k.created)
            self._seen = seen
        return self._keys

    def current(self, now: datetime | None = None) -> SigningKey:
        keys = self.keys()
        if not keys:
            raise InvalidToken(f"no signing key in {self.directory} (this command needs the portal's key file)")
        now = now or datetime.now(UTC)
        published = [k for k in keys if k.created <= now - KEY_PUBLISH_AHEAD]
        return (published or keys)[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys()]}

    def rotate(self, now: datetime | None = None) -> SigningKey:
        """Add a new key (it signs once published for KEY_PUBLISH_AHEAD)."""
        now = now or datetime.now(UTC)
        self.directory.mkdir(parents=True, exist_ok=True)
        kid = now.strftime("k%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()
        private = Ed25519PrivateKey.generate()
        path = self.directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                private.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        os.utime(path, (now.timestamp(), now.timestamp()))
        self._checked = 0.0
        return SigningKey(kid, private, now)

    def retire(self, now: datetime | None = None) -> list[str]:
        """Remove keys older than the signing one once no token they signed can still be valid."""
        now = now or datetime.now(UTC)
        signing = self.current(now)
        retired = []
        for key in self.keys():
            if key.created < signing.created and now - signing.created > MAX_TOKEN_LIFETIME + KEY_PUBLISH_AHEAD:
                (self.directory / f"{key.kid}.pem").unlink(missing_ok=True)
                retired.append(key.kid)
        self._checked = 0.0
        return retired


def issue_token(
    key: SigningKey,
    *,
    sub: str,
    role: Role | str,
    audience: str | Iterable[str],
    now: datetime,
    ttl: timedelta = MAX_TOKEN_LIFETIME,
    grid_ids: Iterable[str] = (),
    building_ids: Iterable[str] = (),
    department: str | None = None,
    household_id: str | None = None,
    session_id: str | None = None,
) -> str:
    if ttl > MAX_TOKEN_LIFETIME or ttl <= timedelta(0):
        raise ValueError(f"a token lives at most {int(MAX_TOKEN_LIFETIME.total_seconds() // 60)} minutes")
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": sub,
        "aud": audience if isinstance(audience, str) else list(audience),
        "role": Role(role).value,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "grid_ids": list(grid_ids),
        "building_ids": list(building_ids),
    }
    if department:
        claims["department"] = department
    if household_id:
        claims["household_id"] = household_id
    if session_id:
        claims["sid"] = session_id
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


class InvalidToken(Exception):
    pass


# -- verification ---------------------------------------------------------------------------


class Verifier:
    """Checks tokens for one audience against a JWKS and the portal's revoked sessions.

    `verify` is synchronous and reads only caches (the hot path of every request); `run`
    refreshes them in the background: the JWKS every `keys_refresh_s` (and soon after an
    unknown `kid`), the revoked sessions every `revocations_refresh_s`. A token with a
    session id is refused while the revocation list is older than `revocations_max_age_s`
    (the portal unreachable): the service fails closed, not open."""

    def __init__(
        self,
        audience: str,
        *,
        jwks_url: str,
        revocations_url: str = "",
        issuer: str = ISSUER,
        keys_refresh_s: float = 60.0,
        revocations_refresh_s: float = 1.0,
        revocations_max_age_s: float = 30.0,
    ) -> None:
        self.audience = audience
        self.jwks_url = jwks_url
        self.revocations_url = revocations_url
        self.issuer = issuer
        self.keys_refresh_s = keys_refresh_s
        self.revocations_refresh_s = revocations_refresh_s
        self.revocations_max_age_s = revocations_max_age_s
        self._keys: dict[str, Any] = {}
        self._revoked: frozenset[str] = frozenset()
        self._revoked_at = float("-inf")
        self._verified: dict[str, tuple[Principal, float, str | None]] = {}
        self._unknown_kid = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._client: httpx.AsyncClient | None = None
        if jwks_url.startswith("file:"):
            self.use_jwks(json.loads(Path(jwks_url.removeprefix("file://").removeprefix("file:")).read_text()))

    # caches ------------------------------------------------------------------------------

    def use_jwks(self, jwks: dict[str, Any]) -> None:
        keys = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("use", "sig") == "sig" and jwk.get("kid"):
                keys[jwk["kid"]] = jwt.PyJWK(jwk).key
        if keys != self._keys:
            self._keys = keys
            self._verified.clear()  # a retired key's tokens must fail from now on

    def use_revocations(self, session_ids: Iterable[str], at: float | None = None) -> None:
        self._revoked = frozenset(session_ids)
        self._revoked_at = time.monotonic() if at is None else at

    # the hot path --------------------------------------------------------------------------

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is None:
            cached = self._decode(token)
            if len(self._verified) > 8192:
                self._verified.clear()
            self._verified[token] = cached
        principal, expires, session_id = cached
        if time.time() >= expires:
            raise InvalidToken("token expired")
        if session_id is not None and self.revocations_url:
            if time.monotonic() - self._revoked_at > self.revocations_max_age_s:
                raise InvalidToken(
                    "cannot confirm the session is still valid (the portal's revocation list is unreachable)"
                )
            if session_id in self._revoked:
                raise InvalidToken("this session has ended: sign in again")
        return principal

    def _decode(self, token: str) -> tuple[Principal, float, str | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        key = self._keys.get(header.get("kid", ""))
        if key is None:
            self._unknown_kid.set()
            raise InvalidToken("invalid token: unknown signing key (kid)")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ACCEPTED_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken(f"invalid token: not meant for {self.audience}") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        if claims["exp"] - claims["iat"] > MAX_TOKEN_LIFETIME.total_seconds():
            raise InvalidToken(
                f"invalid token: it lives longer than {int(MAX_TOKEN_LIFETIME.total_seconds() // 60)} minutes"
            )
        try:
            return Principal.model_validate(claims), float(claims["exp"]), claims.get("sid")
        except ValueError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc

    # the background refresh ----------------------------------------------------------------

    async def refresh_keys(self) -> None:
        if not self.jwks_url:  # an external OIDC issuer: its discovery document names the JWKS
            discovery = await self._http().get(f"{self.issuer}/.well-known/openid-configuration")
            discovery.raise_for_status()
            self.jwks_url = discovery.json()["jwks_uri"]
        if self.jwks_url.startswith("file:"):
            self.use_jwks(json.loads(Path(self.jwks_url.removeprefix("file://").removeprefix("file:")).read_text()))
            return
        response = await self._http().get(self.jwks_url)
        response.raise_for_status()
        self.use_jwks(response.json())

    async def refresh_revocations(self) -> None:
        response = await self._http().get(self.revocations_url)
        response.raise_for_status()
        self.use_revocations(response.json()["session_ids"])

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"verifier-{self.audience}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        next_keys = 0.0
        while True:
            now = time.monotonic()
            if now >= next_keys or self._unknown_kid.is_set():
                self._unknown_kid.clear()
                try:
                    await self.refresh_keys()
                    next_keys = now + self.keys_refresh_s
                except Exception as exc:  # noqa: BLE001 - the portal may start after us; try again soon
                    log.warning("cannot fetch the JWKS from %s: %s", self.jwks_url, exc)
                    next_keys = now + 1.0
            if self.revocations_url:
                try:
                    await self.refresh_revocations()
                except Exception as exc:  # noqa: BLE001
                    log.warning("cannot fetch revoked sessions from %s: %s", self.revocations_url, exc)
            try:
                await asyncio.wait_for(self._unknown_kid.wait(), timeout=self.revocations_refresh_s)
                await asyncio.sleep(0.2)  # an unknown kid: refresh soon, but not once per bad token
            except TimeoutError:
                pass

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=5.0)
        return self._client


def verifier_for(settings: Any, audience: str) -> Verifier:
    """The verifier a service's settings describe (StackSettings: JWKS, revocations, issuer).
    With FIRSTLINE_OIDC_ISSUER the issuer's discovery document names the JWKS."""
    issuer = settings.oidc_issuer.rstrip("/") if settings.oidc_issuer else ISSUER
    return Verifier(audience, jwks_url=settings.jwks_url, revocations_url=settings.revocations_url, issuer=issuer)


# -- FastAPI dependencies -------------------------------------------------------------------


class BearerPrincipal(HTTPBearer):
    """The caller, from `Authorization: Bearer <JWT>`: 401 without a valid token.

    It is FastAPI's HTTPBearer scheme (so OpenAPI documents the routes as secured) whose
    call returns the verified `Principal` itself: one dependency per request, not two, on
    every authenticated route (each costs the request ~15% of a trivial endpoint's time)."""

    def __init__(self) -> None:
        super().__init__(
            scheme_name="HTTPBearer", auto_error=False, description="a FirstLine JWT (`firstline token --help`)"
        )

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
        return request.app.state.verifier.verify(token.strip())
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


@functools.lru_cache(maxsize=8)
def keyring_at(directory: str) -> Keyring:
    return Keyring(directory)


def operator_token(
    keys_dir: str, *, role: Role | str, sub: str, audience: str | Iterable[str] = AUDIENCES, **scopes: Any
) -> str:
    """A token signed with the key in `keys_dir` (FIRSTLINE_KEYS_DIR): for operators and
    tests, only where the portal's key file is present."""
    return issue_token(
        keyring_at(str(keys_dir)).current(), sub=sub, role=role, audience=audience, now=datetime.now(UTC), **scopes
    )
