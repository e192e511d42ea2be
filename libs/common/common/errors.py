"""Errors the use cases raise; the HTTP layer and consumers turn them into answers.

- `NotFound` -> 404, `Conflict` -> 409, `Invalid` -> 422, `Forbidden` -> 403,
  `TooManyRequests` -> 429 (with `Retry-After`): the message says what is wrong, for the
  person who sent it.
- A consumer dead-letters an event whose handler raises `DomainError` at once (retrying
  cannot help); any other exception is retried, then dead-lettered.
"""

from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(DomainError):
    status_code = 422


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class TooManyRequests(DomainError):
    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
