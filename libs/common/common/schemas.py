"""JSON Schemas of every event, generated into docs/schemas/, and the compatibility rule
the contract test enforces: a published schema may gain optional fields; removing or
renaming a field, making one required, or changing its type needs a new version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.events import all_events
from common.events.base import Event


def schema_of(cls: type[Event]) -> dict[str, Any]:
    schema = cls.model_json_schema(mode="serialization")
    schema["$id"] = cls.dataschema()
    schema["x-topic"] = cls.topic
    schema["x-key"] = cls.key_field
    return schema


def schema_path(root: Path, cls: type[Event]) -> Path:
    return root / cls.service / f"{cls.event_type()}.v{cls.version}.json"


def write_all(root: Path) -> list[Path]:
    written = []
    for cls in all_events():
        path = schema_path(root, cls)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema_of(cls), indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        written.append(path)
    return written


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return schema.get("$defs", {}).get(ref.split("/")[-1], {})
    return node


def _types(schema: dict[str, Any], node: dict[str, Any]) -> Any:
    """A comparable summary of a property's type (ignores titles, descriptions, defaults)."""
    node = _resolve(schema, node)
    if "anyOf" in node:
        return sorted(json.dumps(_types(schema, n), sort_keys=True) for n in node["anyOf"])
    if node.get("type") == "array":
        return ["array", _types(schema, node.get("items", {}))]
    if node.get("type") == "object" and "properties" in node:
        return {k: _types(schema, v) for k, v in node["properties"].items()}
    return {k: node[k] for k in ("type", "enum", "const", "format") if k in node}


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` breaks consumers written against `old` (empty when compatible)."""
    problems = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, prop in old_props.items():
        if name not in new_props:
            problems.append(f"field {name!r} removed or renamed")
            continue
        if _types(old, prop) != _types(new, new_props[name]):
            problems.append(f"field {name!r} changed type")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"field {name!r} is newly required")
    return problems
