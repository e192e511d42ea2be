"""Portal use cases: sign people in (household links, phone codes, invitations), keep and
end their sessions, and sign the short-lived tokens their requests carry to the services."""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from common.auth import AUDIENCES, MAX_TOKEN_LIFETIME, Keyring, Role, issue_token
from common.errors import Invalid
from common.notify import Notification, Notifier, NotifyFailed, Recipient
from common.runtime import Runtime
from portal import domain
from portal.domain import OtpCheck, Scope
from portal.models import Account, HouseholdCode, Invitation, LoginCode, PortalSession
from portal.settings import PortalSettings

log = logging.getLogger(__name__)
TOKEN_REUSE_MARGIN = timedelta(minutes=2)  # a cached token is used while it has this much left
# A live session read from the database is trusted this long by this replica (a household's
# page and the check-in it posts a minute later cost one read, not one each); an ending on
# this replica drops it at once, on another replica at its next look at the endings
# (`forget_ended_sessions`, every ENDINGS_POLL_S).
SESSION_CACHE_S = 300.0
ENDINGS_POLL_S = 1.0
ENDINGS_OVERLAP = timedelta(seconds=10)  # commits and clocks of other replicas may lag a little


class SignInRefused(Exception):
    """A sign-in that cannot go on; `reason` is a message key of the catalog."""

    def __init__(self, reason: str, status_code: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@dataclass(frozen=True)
class SignedIn:
    cookie: str  # what the browser keeps (HttpOnly); the database keeps only its digest
    session: PortalSession


def link_secret(keys_dir: str | Path) -> bytes:
    """The portal's own secret for household codes and stored digests (never leaves it)."""
    path = Path(keys_dir) / "links.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        except FileExistsError:
            pass
    return path.read_bytes()


class PortalService:
    def __init__(self, runtime: Runtime, settings: PortalSettings, notifier: Notifier) -> None:
        self.runtime = runtime
        self.settings = settings
        self.notifier = notifier
        self.keyring = Keyring.ensure(settings.keys_dir)
        self.secret = link_secret(settings.keys_dir)
        self.limiter = domain.AttemptLimiter(settings.attempts_per_minute)
        self.dev_outbox: list[dict] = []  # development only: what the SMS gateway would have sent
        self._tokens: dict[tuple[str, str, str], tuple[str, datetime]] = {}
        self._sessions: dict[str, tuple[float, PortalSession]] = {}
        self._endings_seen: datetime | None = None  # when this replica last looked for ended sessions

    @property
    def clock(self):
        return self.runtime.clock

    def url(self, path: str) -> str:
        return self.settings.public_url.rstrip("/") + path

    def allow_attempt(self, address: str) -> bool:
        return self.limiter.allow(address, self.clock.now())

    # -- households ---------------------------------------------------------------------

    async def household_link(self, household_id: str, *, renew: bool = False) -> str:
        """The household's sign-in link; `renew` revokes the current code and issues a new one."""
        async with self.runtime.work() as uow:
            row = await uow.session.get(HouseholdCode, household_id)
            if row is None:
                row = HouseholdCode(household_id=household_id, nonce=domain.new_nonce(), issued_at=self.clock.now())
                uow.session.add(row)
            elif renew:
                row.nonce = domain.new_nonce()
                row.issued_at = self.clock.now()
            nonce = row.nonce
            await uow.commit()
        return self.url(f"/h/{domain.household_code(self.secret, nonce)}")

    async def sign_in_household(self, code: str) -> SignedIn:
        nonce = domain.nonce_of(self.secret, code)
        if nonce is None:
            raise SignInRefused("signin.link_invalid", 404)
        async with self.runtime.db.session() as session:
            row = (
                await session.execute(select(HouseholdCode).where(HouseholdCode.nonce == nonce))
            ).scalar_one_or_none()
        if row is None:
            raise SignInRefused("signin.link_invalid", 404)
        return await self._open(Scope(sub=row.household_id, role=Role.resident.value, household_id=row.household_id))

    # -- phone and one-time code --------------------------------------------------------

    async def send_code(self, phone: str) -> None:
        """Send a code if the number has an account; the answer is the same either way."""
        phone = _phone(phone)
        now = self.clock.now()
        async with self.runtime.work() as uow:
            account = (await uow.session.execute(select(Account).where(Account.phone == phone))).scalar_one_or_none()
            if account is None:
                return
            row = await uow.session.get(LoginCode, phone)
            sent = [datetime.fromisoformat(t) for t in (row.sent if row else [])]
            recent, allowed = domain.sends_left(sent, now, self.settings.otp_per_phone_per_hour)
            if not allowed:
                log.info("one-time code for %s refused: %d sent in the last hour", _masked(phone), len(recent))
                return
            code = domain.new_otp()
            values = dict(
                code_hash=domain.digest(self.secret, f"{phone}:{code}"),
                expires_at=now + timedelta(seconds=self.settings.otp_ttl_s),
                attempts=0,
                sent=[t.isoformat() for t in [*recent, now]],
            )
            if row is None:
                uow.session.add(LoginCode(phone=phone, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            await uow.commit()
        minutes = self.settings.otp_ttl_s // 60
        text = f"【第一道防线】您的登录验证码是 {code}，{minutes}分钟内有效。请勿告诉他人。"
        notification = Notification(
            kind="signin_code",
            channel="sms",
            to=Recipient(id=account.sub, phone=phone),
            text=text,
            idempotency_key=f"signin_code:{phone}:{now.isoformat()}",
            data={"minutes": minutes},
        )
        if self.settings.dev_outbox_on:
            self.dev_outbox.insert(0, {"at": now, "to": phone, "text": text})
            del self.dev_outbox[50:]
        try:
            await self.notifier.notify(notification)
        except NotifyFailed as exc:
            log.warning("sign-in code not sent to %s: %s", _masked(phone), exc)

    async def sign_in_with_code(self, phone: str, code: str) -> SignedIn:
        phone = _phone(phone)
        now = self.clock.now()
        async with self.runtime.work() as uow:
            row = await uow.session.get(LoginCode, phone)
            verdict = domain.check_otp(
                stored_hash=row.code_hash if row else None,
                given_hash=domain.digest(self.secret, f"{phone}:{code.strip()}"),
                expires_at=row.expires_at if row else None,
                attempts=row.attempts if row else 0,
                max_attempts=self.settings.otp_max_attempts,
                now=now,
            )
            if row is not None:
                if verdict == OtpCheck.ok:
                    row.expires_at = now  # a code is good once
                else:
                    row.attempts += 1
            account = (await uow.session.execute(select(Account).where(Account.phone == phone))).scalar_one_or_none()
            await uow.commit()
        if verdict != OtpCheck.ok or account is None:
            raise SignInRefused(
                {OtpCheck.expired: "signin.code_expired", OtpCheck.exhausted: "signin.code_exhausted"}.get(
                    verdict, "signin.code_wrong"
                ),
                401,
            )
        return await self._open(_scope(account))

    # -- invitations --------------------------------------------------------------------

    async def invite(self, scope: Scope, phone: str | None = None) -> str:
        """An admin's one-time sign-in link; the account (with its phone) is kept for later sign-ins."""
        token = secrets.token_urlsafe(24)
        async with self.runtime.work() as uow:
            account = await uow.session.get(Account, scope.sub)
            if account is None:
                account = Account(sub=scope.sub, role=scope.role)
                uow.session.add(account)
            account.role = scope.role
            account.grid_ids = list(scope.grid_ids)
            account.building_ids = list(scope.building_ids)
            account.department = scope.department
            if phone:
                account.phone = _phone(phone)
            uow.session.add(
                Invitation(
                    token_hash=domain.digest(self.secret, token),
                    sub=scope.sub,
                    role=scope.role,
                    grid_ids=list(scope.grid_ids),
                    building_ids=list(scope.building_ids),
                    department=scope.department,
                    expires_at=self.clock.now() + timedelta(hours=self.settings.invitation_hours),
                )
            )
            await uow.commit()
        return self.url(f"/invite/{token}")

    async def accept_invitation(self, token: str) -> SignedIn:
        now = self.clock.now()
        async with self.runtime.work() as uow:
            invitation = await uow.session.get(Invitation, domain.digest(self.secret, token))
            if invitation is None or invitation.used_at is not None or invitation.expires_at <= now:
                raise SignInRefused("signin.invitation_invalid", 404)
            invitation.used_at = now
            scope = Scope(
                invitation.sub,
                invitation.role,
                tuple(invitation.grid_ids),
                tuple(invitation.building_ids),
                invitation.department,
            )
            await uow.commit()
        return await self._open(scope)

    # -- sessions -----------------------------------------------------------------------

    async def _open(self, scope: Scope) -> SignedIn:
        cookie = secrets.token_urlsafe(32)
        now = self.clock.now()
        row = PortalSession(
            session_id=domain.digest(self.secret, cookie),
            sub=scope.sub,
            role=scope.role,
            grid_ids=list(scope.grid_ids),
            building_ids=list(scope.building_ids),
            department=scope.department,
            household_id=scope.household_id,
            created_at=now,
            expires_at=now + timedelta(hours=self.settings.session_hours),
        )
        async with self.runtime.work() as uow:
            uow.session.add(row)
            await uow.commit()
        return SignedIn(cookie, row)

    async def session(self, cookie: str | None) -> PortalSession | None:
        """The live session a cookie names; None for a missing, tampered, ended or expired one."""
        if not cookie or len(cookie) > 100:
            return None
        session_id = domain.digest(self.secret, cookie)
        cached = self._sessions.get(session_id)
        if cached is not None and cached[0] > time.monotonic():
            row = cached[1]
        else:
            async with self.runtime.db.session() as session:
                row = await session.get(PortalSession, session_id)
            if row is not None and row.ended_at is None:
                if len(self._sessions) > 50_000:
                    self._sessions.clear()
                self._sessions[session_id] = (time.monotonic() + SESSION_CACHE_S, row)
        if row is None or row.ended_at is not None or row.expires_at <= self.clock.now():
            return None
        return row

    async def sign_out(self, cookie: str | None) -> None:
        if not cookie:
            return
        async with self.runtime.work() as uow:
            row = await uow.session.get(PortalSession, domain.digest(self.secret, cookie))
            if row is not None and row.ended_at is None:
                row.ended_at = self.clock.now()
            await uow.commit()
        self._sessions.pop(domain.digest(self.secret, cookie), None)

    async def end_sessions_of(self, *, sub: str | None = None, household_id: str | None = None) -> int:
        """Revoke every live session of a person or a household (their tokens die at once)."""
        now = self.clock.now()
        async with self.runtime.work() as uow:
            query = select(PortalSession).where(PortalSession.ended_at.is_(None))
            query = (
                query.where(PortalSession.household_id == household_id)
                if household_id
                else query.where(PortalSession.sub == sub)
            )
            rows = (await uow.session.execute(query)).scalars().all()
            for row in rows:
                row.ended_at = now
                self._sessions.pop(row.session_id, None)
            await uow.commit()
        return len(rows)

    async def forget_ended_sessions(self) -> int:
        """Drop the sessions ended on any replica since the last look from this replica's
        cache: one small indexed read a second instead of one per request."""
        now = self.clock.now()
        since = (self._endings_seen or now - timedelta(seconds=SESSION_CACHE_S)) - ENDINGS_OVERLAP
        async with self.runtime.db.session() as session:
            rows = await session.execute(select(PortalSession.session_id).where(PortalSession.ended_at >= since))
            ended = list(rows.scalars())
        self._endings_seen = now
        for session_id in ended:
            self._sessions.pop(session_id, None)
        return len(ended)

    async def revoked_sessions(self) -> list[str]:
        """Sessions ended within a token's lifetime: a token of theirs may still be cached."""
        since = self.clock.now() - MAX_TOKEN_LIFETIME - timedelta(minutes=1)
        async with self.runtime.db.session() as session:
            rows = await session.execute(select(PortalSession.session_id).where(PortalSession.ended_at >= since))
        return list(rows.scalars())

    def token(self, session: PortalSession, audience: str, sub: str | None = None) -> str:
        """A token for one service, on the session's behalf (a household's acts as one of
        its members: `sub`). Reused while it has a few minutes left."""
        if audience not in AUDIENCES:
            raise Invalid(f"unknown audience {audience!r}")
        key = (session.session_id, audience, sub or session.sub)
        now = datetime.now(UTC)  # the real time, not the clock: services check tokens against the wall clock
        cached = self._tokens.get(key)
        if cached and cached[1] - now > TOKEN_REUSE_MARGIN:
            return cached[0]
        token = issue_token(
            self.keyring.current(now),
            sub=sub or session.sub,
            role=session.role,
            audience=audience,
            now=now,
            grid_ids=session.grid_ids,
            building_ids=session.building_ids,
            department=session.department,
            household_id=session.household_id,
            session_id=session.session_id or None,
        )
        if len(self._tokens) > 20_000:
            self._tokens.clear()
        self._tokens[key] = (token, now + MAX_TOKEN_LIFETIME)
        return token


def _scope(account: Account) -> Scope:
    return Scope(account.sub, account.role, tuple(account.grid_ids), tuple(account.building_ids), account.department)


def _phone(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit() or ch == "+")
    if not 6 <= len(digits) <= 20:
        raise Invalid("signin.phone_invalid")
    return digits


def _masked(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]
