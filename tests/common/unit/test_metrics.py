"""LoopHistogram: the histogram a consumer observes per event, as Prometheus reads it."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import LoopHistogram


def samples(registry: CollectorRegistry, name: str) -> dict[tuple, float]:
    (family,) = [f for f in text_string_to_metric_families(generate_latest(registry).decode()) if f.name == name]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples if not s.name.endswith("_created")
    }


def test_it_exposes_what_prometheus_clients_histogram_would():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("x_seconds", "doc", ["consumer"], buckets=(0.01, 0.1, 1), registry=ours)
    reference = Histogram("x_seconds", "doc", ["consumer"], buckets=(0.01, 0.1, 1), registry=theirs)
    for consumer, value in [("a", 0.01), ("a", 0.05), ("a", 0.1), ("a", 7.0), ("b", 0.0), ("b", -1.0)]:
        loop.labels(consumer).observe(value)
        reference.labels(consumer).observe(value)
    assert samples(ours, "x_seconds") == samples(theirs, "x_seconds")


def test_a_batch_of_equal_values_counts_at_once():
    registry = CollectorRegistry()
    series = LoopHistogram("batch_seconds", "doc", [], buckets=(0.5,), registry=registry).labels()
    series.observe(0.25, 1000)
    assert samples(registry, "batch_seconds") == {
        ("batch_seconds_bucket", (("le", "0.5"),)): 1000,
        ("batch_seconds_bucket", (("le", "+Inf"),)): 1000,
        ("batch_seconds_count", ()): 1000,
        ("batch_seconds_sum", ()): 250.0,
    }


def test_labels_must_match_and_names_are_unique():
    registry = CollectorRegistry()
    histogram = LoopHistogram("y_seconds", "doc", ["a", "b"], buckets=(1,), registry=registry)
    with pytest.raises(ValueError, match="do not match"):
        histogram.labels("only one")
    with pytest.raises(ValueError, match="Duplicated"):
        LoopHistogram("y_seconds", "doc", [], buckets=(1,), registry=registry)
