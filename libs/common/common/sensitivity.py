"""Health data decided by what a record holds, not by its name (DESIGN.md §6), and text made
safe for logs and dead-letter headers.

A record is health-sensitive when it carries a temperature, symptoms, a health tag, free
text (a description, details, a reply, a note), or a request for medicine, a doctor's visit
or psychological help. Services ask `is_sensitive` of a ticket's or a request's facts; what
they then show to whom is their allowlist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from common.vocabulary import HEALTH_CATEGORIES, HEALTH_TAGS

# Fields whose mere presence (with a value) makes a record health-sensitive.
HEALTH_VALUE_FIELDS = frozenset({"temperature_c", "symptoms", "fever"})
# Free text: whatever a person typed may be about their health.
FREE_TEXT_FIELDS = frozenset({"description", "details", "text", "note", "comment", "summary", "reason"})


def is_sensitive(facts: Mapping[str, Any], *, description: str | None = None) -> bool:
    """Whether a record with these facts (and this free text) carries health data."""
    if description and description.strip():
        return True
    for name in FREE_TEXT_FIELDS:
        value = facts.get(name)
        if isinstance(value, str) and value.strip():
            return True
    return carries_health_values(facts)


def carries_health_values(facts: Mapping[str, Any]) -> bool:
    """Whether facts name health as such (a temperature, a symptom, a health tag or category),
    apart from free text, which may or may not."""
    if any(_present(facts.get(name)) for name in HEALTH_VALUE_FIELDS):
        return True
    if health_tags(facts.get("tags")):
        return True
    return facts.get("category") in HEALTH_CATEGORIES


def health_tags(tags: Iterable[str] | None) -> set[str]:
    if not tags or isinstance(tags, str):
        return set()
    return {t for t in tags if t in HEALTH_TAGS}


def _present(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, (list, tuple, set, dict, str)):
        return bool(value)
    return True


# What error text must not carry into logs and dead-letter headers: the values a database
# driver or a validator echoes.
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\s*(\(|\[|$))", re.DOTALL)
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]|$)", re.DOTALL)
_DETAIL = re.compile(r"(DETAIL:)[^\n]*")  # PostgreSQL's: "Key (id)=(…)", "Failing row contains (…)"


def redact(text: str) -> str:
    """Error text without the values it quotes: SQL parameters, validated input, PostgreSQL's
    DETAIL line (a violated key, a failing row). The statement, the field and the reason stay."""
    text = _SQL_PARAMETERS.sub("[parameters hidden]", text)
    text = _INPUT_VALUE.sub("input_value=<hidden>", text)
    return _DETAIL.sub(r"\1 <hidden>", text)
