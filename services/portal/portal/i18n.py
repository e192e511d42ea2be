"""Every text a page shows comes from a message catalog: Chinese first, English second.

The catalog of a language is `messages/<lang>.json` plus one file per area of the portal,
`messages/<area>.<lang>.json` (e.g. `grid.zh.json`); a key defined in two files is an error."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("zh", "en")
DEFAULT = "zh"
CATALOGS = Path(__file__).parent / "messages"


@cache
def catalog(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(CATALOGS.glob(f"*{lang}.json")):
        if path.name != f"{lang}.json" and not path.name.endswith(f".{lang}.json"):
            continue
        part = json.loads(path.read_text(encoding="utf-8"))
        twice = merged.keys() & part.keys()
        if twice:
            raise ValueError(f"{path.name} defines keys another catalog file defines: {sorted(twice)}")
        merged.update(part)
    return merged


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.messages = catalog(self.lang)

    def __call__(self, key: str, **values: object) -> str:
        # A missing key is a bug the catalog test catches; on a page it shows as the key.
        text = self.messages.get(key) or catalog(DEFAULT).get(key) or key
        return text.format(**values) if values else text


def language_of(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    return DEFAULT  # Chinese first, whatever the browser says; the page offers English
