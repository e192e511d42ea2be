"""The snapshot collector and the consumer-lag arithmetic, with no fixtures."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import DomainMetrics, consumer_lag


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_refresh_replaces_every_series_at_once() -> None:
    registry = CollectorRegistry()
    m = DomainMetrics(registry, "supplies")
    on_hand = m.gauge("firstline_supplies_on_hand", "on hand", ["item_id", "depot_id"])
    moved = m.counter("firstline_supplies_movements_total", "movements", ["kind"])
    m.publish({on_hand: {("masks", "D1"): 40, ("gloves", "D1"): 0}, moved: {("issue",): 3}})
    first = samples(registry)
    assert first[("firstline_supplies_on_hand", (("depot_id", "D1"), ("item_id", "masks")))] == 40
    assert first[("firstline_supplies_movements_total", (("kind", "issue"),))] == 3

    m.publish({on_hand: {("masks", "D1"): 35}})
    second = samples(registry)
    assert second[("firstline_supplies_on_hand", (("depot_id", "D1"), ("item_id", "masks")))] == 35
    assert ("firstline_supplies_on_hand", (("depot_id", "D1"), ("item_id", "gloves"))) not in second
    assert not any(name == "firstline_supplies_movements_total" for name, _ in second)


async def test_refresh_records_when_and_counts_failures() -> None:
    registry = CollectorRegistry()
    m = DomainMetrics(registry, "timebank")
    members = m.gauge("firstline_timebank_members", "members", ["kind"])

    async def good():
        return {members: {("volunteer",): 30}}

    async def broken():
        raise RuntimeError("database away")

    await m.refresh(good)
    with pytest.raises(RuntimeError):
        await m.refresh(broken)
    figures = samples(registry)
    assert figures[("firstline_timebank_members", (("kind", "volunteer"),))] == 30  # the last good refresh stays
    assert figures[("firstline_metrics_refreshed_timestamp_seconds", (("service", "timebank"),))] > 1.7e9
    assert figures[("firstline_metrics_refresh_failures_total", (("service", "timebank"),))] == 1


def test_names_and_labels_are_checked() -> None:
    m = DomainMetrics(CollectorRegistry(), "dispatch")
    with pytest.raises(ValueError, match="firstline_dispatch_"):
        m.gauge("requests_open", "no prefix")
    with pytest.raises(ValueError, match="_total"):
        m.counter("firstline_dispatch_requests", "a counter without _total")
    requests = m.gauge("firstline_dispatch_requests", "requests", ["category", "status"])
    with pytest.raises(ValueError, match="declared twice"):
        m.gauge("firstline_dispatch_requests", "again")
    with pytest.raises(ValueError, match="do not match"):
        m.publish({requests: {("groceries",): 1}})
    with pytest.raises(ValueError, match="give a mapping"):
        m.publish({requests: 3})


def test_consumer_lag_per_topic() -> None:
    end = {("a", 0): 10, ("a", 1): 5, ("b", 0): 7}
    committed = {("a", 0): 10, ("a", 1): 2}  # b/0 never committed: read from its beginning
    beginning = {("a", 0): 0, ("a", 1): 0, ("b", 0): 3}
    assert consumer_lag(end, committed, beginning) == {"a": 3, "b": 4}
    assert consumer_lag(end, {("a", 0): -1}, {}) == {"a": 15, "b": 7}  # -1: no offset committed


def test_a_name_the_service_already_counts_fails_at_the_first_publish() -> None:
    from prometheus_client import Counter

    registry = CollectorRegistry()
    Counter("firstline_command_tickets_opened_total", "counted in the hot path", ["kind"], registry=registry)
    m = DomainMetrics(registry, "command")
    opened = m.counter("firstline_command_tickets_opened_total", "and again from the database", ["kind"])
    with pytest.raises(ValueError, match="Duplicated"):
        m.publish({opened: {("fever",): 1}})


def test_a_service_registry_exports_its_process_beside_its_own_figures() -> None:
    from common.metrics import PipelineMetrics

    registry = CollectorRegistry()
    PipelineMetrics(registry, "supplies")
    names = {name for name, _ in samples(registry)}
    assert {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_info",
        "python_gc_collections_total",
    } <= names
    assert any(name.startswith("firstline_outbox") for name in names)
