"""A service's AsyncAPI 3.0 document, from what it really puts on and takes off the wire:
the CloudEvents envelope whose `data` is the event's committed JSON Schema
(docs/schemas/), the topics it publishes, and for each consumer the event classes it
applies and where its dead letters go. Served at `/asyncapi` (JSON) and `/asyncapi.html`,
committed under docs/asyncapi/ by `firstline asyncapi`.
"""

from __future__ import annotations

import copy
import html
import json
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import Any

from common import bus, topics
from common.bus import Consumer
from common.events.base import Event
from common.schemas import schema_of

CONTENT_TYPE = "application/cloudevents+json"
_PAGE = Template((Path(__file__).parent / "asyncapi.html").read_text())

ENVELOPE: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0, structured JSON mode; the Kafka key equals `subject`.",
    "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data"],
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {"type": "string", "format": "uuid", "description": "The event id: consumers deduplicate on it."},
        "source": {"type": "string", "description": "/firstline/<the producing service>"},
        "type": {"type": "string", "description": "The event name."},
        "subject": {"type": "string", "description": "The aggregate id, equal to the Kafka key."},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string", "const": "application/json"},
        "dataschema": {"type": "string", "description": "urn:firstline:<service>:<type>:<version>"},
        "correlationid": {"type": "string", "description": "The first event of the chain this one belongs to."},
        "causationid": {"type": "string", "description": "The event that caused this one."},
        "data": {"type": "object"},
    },
}

DEAD_LETTER_HEADERS = {
    bus.H_REASON: "why it could not be applied (no payload values)",
    bus.H_KIND: "unparsable, invalid-envelope, unknown-type, invalid-payload, untrusted-origin, rejected, failed",
    bus.H_TOPIC: "the topic it came from",
    bus.H_PARTITION: "its partition there",
    bus.H_OFFSET: "its offset there",
    bus.H_CONSUMER: "the consumer group that gave up on it",
    bus.H_STUB: "present when the record was too large to keep: the value is empty",
    bus.H_DIGEST: "sha256 of the original value, on a stub",
}


def message_id(cls: type[Event]) -> str:
    return f"{cls.event_type()}.v{cls.version}"


def document(
    service: str, description: str, publishes: Sequence[type[Event]], consumers: Sequence[Consumer]
) -> dict[str, Any]:
    schemas: dict[str, Any] = {"CloudEvent": ENVELOPE}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def channel(topic: str, classes: Sequence[type[Event]]) -> str:
        entry = channels.setdefault(topic, {"address": topic, "messages": {}})
        known = {t.name: t.description for t in topics.CATALOG}
        if topic in known:
            entry["description"] = known[topic]
        for cls in classes:
            _add_event(cls, schemas, messages)
            entry["messages"][message_id(cls)] = {"$ref": f"#/components/messages/{message_id(cls)}"}
        return topic

    def refs(topic: str, classes: Sequence[type[Event]]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{topic}/messages/{message_id(cls)}"} for cls in classes]

    by_topic: dict[str, list[type[Event]]] = {}
    for cls in publishes:
        by_topic.setdefault(cls.topic, []).append(cls)
    for topic, classes in by_topic.items():
        channel(topic, classes)
        operations[f"publish.{topic}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{topic}"}, "messages": refs(topic, classes),
            "summary": f"{service}'s outbox relay publishes these (idempotent producer, acks=all)",
        }  # fmt: skip
    for consumer in consumers:
        handled = list(consumer.handlers)
        for topic in consumer.topics:
            classes = [cls for cls in handled if cls.topic == topic]
            channel(topic, classes)
            operations[f"{consumer.name}.consume.{topic}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{topic}"}, "messages": refs(topic, classes),
                "summary": f"consumer group {consumer.name} applies these once each; anything else is dead-lettered",
            }  # fmt: skip
        dlq = consumer.dead_letter_topic
        channels.setdefault(dlq, {"address": dlq, "messages": {}})["messages"]["DeadLetter"] = {
            "$ref": "#/components/messages/DeadLetter"
        }
        operations[f"{consumer.name}.dead-letter"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{dlq}"},
            "messages": [{"$ref": f"#/channels/{dlq}/messages/DeadLetter"}],
            "summary": "what the consumer could not apply, with the reason and origin in headers",
        }  # fmt: skip
    if consumers:
        messages["DeadLetter"] = {
            "name": "DeadLetter",
            "summary": "The original record's value and headers, plus why and whence",
            "headers": {"type": "object", "properties": {k: {"type": "string", "description": v} for k, v in DEAD_LETTER_HEADERS.items()}},
            "payload": {"type": "string", "description": "the original value, byte for byte (empty on a stub)"},
        }  # fmt: skip
    return {
        "asyncapi": "3.0.0",
        "info": {"title": f"FirstLine {service} events", "version": "1.0.0", "description": description.strip()},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka-secure",
                "description": "SASL SCRAM-SHA-512 over TLS; `firstline kafka-credentials PRINCIPAL` prints a principal's settings",
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "one principal per service, partner department and operator",
                }
            },
        },
    }


def _add_event(cls: type[Event], schemas: dict[str, Any], messages: dict[str, Any]) -> None:
    name = message_id(cls)
    if name in messages:
        return
    data = _embedded(schema_of(cls), name, schemas)
    schemas[name] = data
    schemas[f"{name}.envelope"] = {
        "allOf": [
            {"$ref": "#/components/schemas/CloudEvent"},
            {"type": "object", "properties": {
                "type": {"const": cls.event_type()}, "source": {"const": f"/firstline/{cls.service}"},
                "dataschema": {"const": cls.dataschema()}, "data": {"$ref": f"#/components/schemas/{name}"},
            }},
        ]
    }  # fmt: skip
    messages[name] = {
        "name": cls.event_type(),
        "title": cls.event_type(),
        "summary": " ".join((cls.__doc__ or "").split()) or cls.event_type(),
        "contentType": CONTENT_TYPE,
        "headers": {"type": "object", "properties": {"content-type": {"type": "string", "const": CONTENT_TYPE}}},
        "payload": {"$ref": f"#/components/schemas/{name}.envelope"},
        "correlationId": {"location": "$message.payload#/correlationid"},
        "bindings": {"kafka": {"key": {"type": "string", "description": f"the event's {cls.key_field}"}}},
        "x-dataschema": cls.dataschema(),
        "x-schema-file": f"docs/schemas/{cls.service}/{cls.event_type()}.v{cls.version}.json",
    }


def _embedded(schema: dict[str, Any], name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """The committed schema, its `$defs` moved to components (a `$ref` resolves from the
    document's root there) and its `$id` kept as an extension (it would rebase the refs)."""
    schema = copy.deepcopy(schema)
    for def_name, definition in schema.pop("$defs", {}).items():
        schemas[f"{name}.{def_name}"] = _rebased(definition, name)
    schema["x-id"] = schema.pop("$id", None)
    return _rebased(schema, name)


def _rebased(node: Any, name: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (f"#/components/schemas/{name}.{v.removeprefix('#/$defs/')}" if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/") else _rebased(v, name))
            for k, v in node.items()
        }  # fmt: skip
    if isinstance(node, list):
        return [_rebased(v, name) for v in node]
    return node


def page(doc: dict[str, Any]) -> str:
    """The document as one self-contained HTML page (no script, no outside asset)."""
    e = html.escape
    rows = []
    for _op_id, op in doc["operations"].items():
        channel = op["channel"]["$ref"].rsplit("/", 1)[-1]
        names = [ref["$ref"].rsplit("/", 1)[-1] for ref in op["messages"]]
        links = ", ".join(f'<a href="#{e(n)}">{e(n)}</a>' for n in names) or "—"
        rows.append(
            f"<tr><td>{e(op['action'])}</td><td><code>{e(channel)}</code></td><td>{links}</td><td>{e(op.get('summary', ''))}</td></tr>"
        )
    sections = []
    for name, message in doc["components"]["messages"].items():
        payload = message["payload"]
        data = doc["components"]["schemas"].get(name, payload)
        sections.append(
            f'<section id="{e(name)}"><h3>{e(name)}</h3><p>{e(message.get("summary", ""))}</p>'
            f"<p>Schema: <code>{e(message.get('x-schema-file', ''))}</code></p>"
            f"<pre>{e(json.dumps(data, indent=2, ensure_ascii=False))}</pre></section>"
        )
    return _PAGE.substitute(
        title=e(doc["info"]["title"]), description=e(doc["info"].get("description", "")),
        envelope=e(json.dumps(ENVELOPE, indent=2)), operations="\n".join(rows), messages="\n".join(sections),
    )  # fmt: skip
