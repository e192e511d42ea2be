"""Bench: the command center's pipeline (bench/command_pipeline.py, throughput part) on a
three-node Kafka cluster (replication 3, min.insync.replicas 2, acks=all) against a single
node, in the same run on the same machine. Goal: the cluster within 1.5x of the single node.

Both brokers are started here by deploy/kafka/kafka.sh on ports of their own (the fault
suite's: one node on 19190, the cluster on 19170-19175; FIRSTLINE_FAULTS_KAFKA_PORT and
FIRSTLINE_FAULTS_CLUSTER_PORT move them) and stopped afterwards.

    .venv/bin/python bench/cluster_pipeline.py [--events 30000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
VAR = ROOT / "var" / "faults"


def kafka(nodes: int, port: int) -> dict[str, str]:
    return {**os.environ, "FIRSTLINE_KAFKA_NODES": str(nodes), "FIRSTLINE_KAFKA_PORT": str(port),
            "FIRSTLINE_KAFKA_VAR": str(VAR / ("kafka-single" if nodes == 1 else "kafka-cluster")),
            "KAFKA_BOOTSTRAP_SERVERS": ""}  # fmt: skip


def client_env(script_env: dict[str, str]) -> dict[str, str]:
    exports = subprocess.run([str(KAFKA_SH), "env"], env=script_env, check=True, capture_output=True, text=True)
    env = dict(os.environ)
    for word in shlex.split(exports.stdout.removeprefix("export ")):
        name, _, value = word.partition("=")
        env[name] = value
    return env


def run(env: dict[str, str], events: int) -> float:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "command_pipeline.py"), "--only", "throughput", "--events", str(events)],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    print(result.stdout.rstrip(), flush=True)
    if result.returncode:
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"command_pipeline.py failed on {env['KAFKA_BOOTSTRAP_SERVERS']}")
    return float(re.search(r"end to end: ([\d.]+) s", result.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs on each; the best of each counts")
    args = parser.parse_args()
    single = kafka(1, int(os.environ.get("FIRSTLINE_FAULTS_KAFKA_PORT", "19190")))
    cluster = kafka(3, int(os.environ.get("FIRSTLINE_FAULTS_CLUSTER_PORT", "19170")))
    times: dict[str, list[float]] = {"single": [], "cluster": []}
    try:
        for env in (single, cluster):
            subprocess.run([str(KAFKA_SH), "start"], env=env, check=True, capture_output=True)
        for _ in range(args.rounds):  # alternating: a busy moment of the machine hits both
            for name, env in (("single", single), ("cluster", cluster)):
                print(f"== {name}", flush=True)
                times[name].append(run(client_env(env), args.events))
    finally:
        for env in (single, cluster):
            subprocess.run([str(KAFKA_SH), "stop"], env=env, capture_output=True)
    best = {name: min(values) for name, values in times.items()}
    ratio = best["cluster"] / best["single"]
    print(
        f"{args.events:,} events outbox -> Kafka -> command -> tickets: single node best {best['single']:.1f} s "
        f"(runs {', '.join(f'{t:.1f}' for t in times['single'])}), three nodes with replication 3 best "
        f"{best['cluster']:.1f} s (runs {', '.join(f'{t:.1f}' for t in times['cluster'])}); "
        f"ratio {ratio:.2f}x (goal <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
