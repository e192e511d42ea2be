"""The AsyncAPI documents under docs/asyncapi/ are what the services put on the wire, current,
and valid for the official AsyncAPI parser (npm @asyncapi/parser, installed by
`make asyncapi-parser`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "asyncapi"
CHECKER = ROOT / "tests" / "common" / "asyncapi"


def validate(*files: Path) -> subprocess.CompletedProcess:
    if not (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the AsyncAPI parser is not installed: run `make asyncapi-parser`")
    return subprocess.run(["node", str(CHECKER / "validate.cjs"), *map(str, files)], capture_output=True, text=True)


def test_the_committed_documents_are_current():
    check = subprocess.run(
        [sys.executable, "-m", "common.cli", "asyncapi", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert check.returncode == 0, check.stderr


def test_the_official_parser_accepts_every_document_and_refuses_a_broken_one(tmp_path):
    documents = sorted(DOCS.glob("*.json"))
    assert {d.stem for d in documents} >= {"checkin", "supplies", "dispatch", "timebank", "command"}
    result = validate(*documents)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(json.loads(line)["errors"] == [] for line in result.stdout.splitlines())

    broken = json.loads((DOCS / "command.json").read_text())
    del broken["info"]
    broken["operations"]["publish.command.events.v1"]["channel"] = {"$ref": "#/channels/nowhere"}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = validate(tmp_path / "broken.json")
    assert refused.returncode == 1 and json.loads(refused.stdout)["errors"]


def test_subscribers_show_the_classes_they_apply_in_the_envelope_with_the_committed_schema():
    doc = json.loads((DOCS / "command.json").read_text())
    received = {
        ref["$ref"].rsplit("/", 1)[-1]
        for op in doc["operations"].values()
        if op["action"] == "receive"
        for ref in op["messages"]
    }
    assert {"CheckInMissed.v1", "HealthAnomalyReported.v1", "StockLow.v1", "RequestRaised.v1"} <= received
    message = doc["components"]["messages"]["CheckInMissed.v1"]
    assert message["contentType"] == "application/cloudevents+json"
    assert message["correlationId"]["location"] == "$message.payload#/correlationid"
    envelope = doc["components"]["schemas"]["CheckInMissed.v1.envelope"]["allOf"]
    assert envelope[0] == {"$ref": "#/components/schemas/CloudEvent"}
    assert envelope[1]["properties"]["data"] == {"$ref": "#/components/schemas/CheckInMissed.v1"}
    committed = json.loads((ROOT / message["x-schema-file"]).read_text())
    data = doc["components"]["schemas"]["CheckInMissed.v1"]
    assert data["x-id"] == committed["$id"] and data["required"] == committed["required"]
    assert set(data["properties"]) == set(committed["properties"])
    assert "EmptyPayload" not in json.dumps(doc)
