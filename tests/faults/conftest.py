"""The fault suite's own Kafka node, three-node cluster and PostgreSQL, started once per run
on the suite's ports (see harness.py) and stopped at the end; the table of every experiment
is printed after the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import CLUSTER_PORT, KAFKA_PORT, PG_PORT, TABLE, VAR, Kafka, Postgres, render


@pytest.fixture(scope="session")
def single() -> Iterator[Kafka]:
    kafka = Kafka(1, KAFKA_PORT, VAR / "kafka-single")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Kafka]:
    kafka = Kafka(3, CLUSTER_PORT, VAR / "kafka-cluster")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    pg = Postgres(PG_PORT, VAR / "postgres")
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    if TABLE:
        terminalreporter.write_sep("=", "fault suite: what was sent, accepted, applied, lost and duplicated")
        terminalreporter.write_line(render(TABLE))
        terminalreporter.write_line(f"(also in {VAR / 'table.md'})")
