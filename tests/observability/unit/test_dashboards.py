"""The Grafana dashboards as provisioned: valid JSON written by deploy/grafana/build.py, on
the provisioned datasource, titled in Chinese with English, heat maps on map panels fed by
bounded coordinates. (Their queries run against a real Prometheus in test_prometheus_stack.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy/grafana"
CJK = re.compile(r"[\u4e00-\u9fff]")


def boards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_committed_dashboards_are_what_build_py_writes() -> None:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rendered = build.render()
    assert (
        set(rendered)
        == set(boards())
        == {"overview.json", "checkin.json", "supplies.json", "dispatch.json", "timebank.json", "pipeline.json"}
    )
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text(encoding="utf-8") == text, (
            f"{name}: run deploy/grafana/build.py"
        )


def test_every_panel_queries_the_provisioned_datasource() -> None:
    [source] = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/firstline.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"  # where docker-compose mounts them
    uids = set()
    for name, board in boards().items():
        assert CJK.search(board["title"]) and re.search(r"[A-Za-z]{4}", board["title"]), board["title"]
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"] if p["type"] != "row"]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert CJK.search(panel["title"]), panel["title"]
            assert panel["datasource"]["uid"] == source["uid"], (name, panel["title"])
            assert panel["targets"] and all(
                t["expr"].strip() and t["datasource"]["uid"] == source["uid"] for t in panel["targets"]
            )
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_heat_maps_are_map_panels_with_numeric_coordinates_from_bounded_labels() -> None:
    maps = [(name, p) for name, b in boards().items() for p in b["panels"] if p["type"] == "geomap"]
    assert {name for name, _ in maps} >= {"overview.json", "checkin.json"}
    for _, panel in maps:
        [target] = panel["targets"]
        assert target["format"] == "table" and target["instant"]
        assert re.search(r"by \([^)]*\blat\b[^)]*\blon\b", target["expr"]), target["expr"]
        assert "resident" not in target["expr"]
        conversions = panel["transformations"][0]["options"]["conversions"]
        assert {c["targetField"] for c in conversions} == {"lat", "lon"}
        assert any(layer["type"] == "heatmap" for layer in panel["options"]["layers"])


def test_no_query_groups_or_filters_by_a_person() -> None:
    for board in boards().values():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                assert not re.search(r"resident_id|member_id|volunteer_id|owner", target["expr"]), target["expr"]
