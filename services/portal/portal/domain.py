"""The portal's own rules, pure: sign-in codes, one-time codes, attempt limits.

No rule of another service lives here: who may see or do what is decided by the
service that owns it; the portal only signs people in and forwards what they do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

CODE_TAG_BYTES = 9  # the household code's signature, truncated: forged codes are refused without a lookup


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_nonce() -> str:
    return _b64(secrets.token_bytes(12))


def household_code(secret: bytes, nonce: str) -> str:
    """The code in a household's link `/h/<code>`: its nonce and a signature of it."""
    tag = hmac.new(secret, nonce.encode(), hashlib.sha256).digest()[:CODE_TAG_BYTES]
    return f"{nonce}.{_b64(tag)}"


def nonce_of(secret: bytes, code: str) -> str | None:
    """The nonce of a well-signed code, None for a forged or malformed one."""
    nonce, _, _ = code.partition(".")
    if not nonce or len(code) > 80:
        return None
    return nonce if hmac.compare_digest(household_code(secret, nonce), code) else None


def digest(secret: bytes, value: str) -> str:
    """How one-time codes and invitation tokens are stored: never as they were sent."""
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def new_otp() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


class OtpCheck(StrEnum):
    ok = "ok"
    wrong = "wrong"
    expired = "expired"
    exhausted = "exhausted"


def check_otp(
    *,
    stored_hash: str | None,
    given_hash: str,
    expires_at: datetime | None,
    attempts: int,
    max_attempts: int,
    now: datetime,
) -> OtpCheck:
    """A code is good once, before it expires, within its attempts."""
    if stored_hash is None or expires_at is None:
        return OtpCheck.wrong
    if attempts >= max_attempts:
        return OtpCheck.exhausted
    if now >= expires_at:
        return OtpCheck.expired
    return OtpCheck.ok if hmac.compare_digest(stored_hash, given_hash) else OtpCheck.wrong


def sends_left(sent: list[datetime], now: datetime, per_hour: int) -> tuple[list[datetime], bool]:
    """The sends of the last hour, and whether one more is allowed."""
    recent = [t for t in sent if now - t < timedelta(hours=1)]
    return recent, len(recent) < per_hour


class AttemptLimiter:
    """At most `limit` attempts per key in a sliding minute (sign-in codes and household
    links, per client address). In memory: a replica limits what reaches it."""

    def __init__(self, limit: int, window: timedelta = timedelta(minutes=1)) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[datetime]] = {}

    def allow(self, key: str, now: datetime) -> bool:
        seen = self._seen.setdefault(key, deque())
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        if len(self._seen) > 10_000:  # forget quiet addresses
            self._seen = {k: v for k, v in self._seen.items() if v}
        return True


def given_name(name: str) -> str:
    """What a neighbour's sheet shows: the given name (a Chinese name without its surname)."""
    name = name.strip()
    if name and all("\u4e00" <= ch <= "\u9fff" for ch in name) and len(name) >= 2:
        return name[1:] if len(name) <= 3 else name[2:]
    return name.split()[0] if name else name


@dataclass(frozen=True)
class Scope:
    """Who a session or invitation acts as."""

    sub: str
    role: str
    grid_ids: tuple[str, ...] = ()
    building_ids: tuple[str, ...] = ()
    department: str | None = None
    household_id: str | None = None
