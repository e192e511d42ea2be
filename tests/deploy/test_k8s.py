"""deploy/k8s: every overlay renders, validates against the vendored Kubernetes, Strimzi,
CloudNativePG and Prometheus-operator schemas, and says what the code says (topics, ACLs,
probes). `make test` installs kustomize and kubeconform first (deploy/k8s/tools.sh)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common import topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
BIN = ROOT / ".tools/bin"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SCHEMA_LOCATIONS = (
    "deploy/k8s/schemas/kubernetes/{{ .ResourceKind }}{{ .KindSuffix }}.json",
    "deploy/k8s/schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
)


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run deploy/k8s/tools.sh (make test does)")
    return str(path)


def render(overlay: str) -> str:
    result = subprocess.run(
        [tool("kustomize"), "build", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def kubeconform(manifests: str) -> subprocess.CompletedProcess:
    args = [tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", "1.33.0"]
    for location in SCHEMA_LOCATIONS:
        args += ["-schema-location", location]
    return subprocess.run([*args, "-"], input=manifests, capture_output=True, text=True, cwd=ROOT, check=False)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, str, list[dict]]:
    text = render(request.param)
    return request.param, text, [d for d in yaml.safe_load_all(text) if d]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_there_are_overlays_for_several_communities():
    assert len(OVERLAYS) >= 2


def test_the_generated_manifests_match_the_code():
    result = subprocess.run(
        [sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_resource_validates_against_its_schema(rendered):
    _overlay, text, docs = rendered
    result = kubeconform(text)
    assert result.returncode == 0, result.stdout + result.stderr
    # No kind may go unchecked for want of a schema.
    assert f"{len(docs)} resources found" in result.stdout and "Skipped: 0" in result.stdout, result.stdout


def test_the_validator_rejects_a_misspelt_field(rendered):
    _overlay, text, _docs = rendered
    broken = text.replace("operations:", "operation_list:", 1)
    result = kubeconform(broken)
    assert result.returncode != 0 and "KafkaUser" in result.stdout


def test_each_community_lives_in_its_own_namespace_with_its_own_label(rendered):
    overlay, _text, docs = rendered
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {f"firstline-{overlay}"}
    assert all(d["metadata"]["labels"]["firstline.io/community"] == overlay for d in docs)


def test_deployments_have_probes_and_resource_requests(rendered):
    _overlay, _text, docs = rendered
    deployments = of_kind(docs, "Deployment")
    assert {"checkin", "supplies", "dispatch", "timebank", "command", "portal"} <= set(deployments)
    for name, deployment in deployments.items():
        (app,) = deployment["spec"]["template"]["spec"]["containers"]
        assert app["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert app["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert {"cpu", "memory"} <= set(app["resources"]["requests"]), name


def test_the_portal_is_behind_an_ingress_with_tls(rendered):
    overlay, _text, docs = rendered
    ingress = of_kind(docs, "Ingress")["portal"]
    host = ingress["spec"]["rules"][0]["host"]
    assert overlay in host and host in ingress["spec"]["tls"][0]["hosts"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "portal" and of_kind(docs, "Service")["portal"]["spec"]["ports"][0]["port"] == 8000


def test_kafka_has_three_nodes_and_a_topic_per_catalog_entry(rendered):
    _overlay, _text, docs = rendered
    (pool,) = of_kind(docs, "KafkaNodePool").values()
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    kafka = of_kind(docs, "Kafka")["firstline"]["spec"]["kafka"]
    assert kafka["authorization"]["type"] == "simple"
    assert kafka["listeners"][0]["authentication"]["type"] == "scram-sha-512" and kafka["listeners"][0]["tls"]
    assert kafka["config"]["auto.create.topics.enable"] is False
    declared = {t["spec"]["topicName"]: t["spec"] for t in of_kind(docs, "KafkaTopic").values()}
    assert set(declared) == {t.name for t in topics.CATALOG}
    for t in topics.CATALOG:
        assert declared[t.name]["partitions"] == t.partitions
        assert declared[t.name]["config"]["retention.ms"] == t.config(3)["retention.ms"]
        assert declared[t.name]["replicas"] == 3 and declared[t.name]["config"]["min.insync.replicas"] == "2"


# Every service has a database of its own, and so has the portal (accounts, sessions).
WITH_DATABASE = (*topics.SERVICES, "portal")


def test_postgres_has_a_standby_and_a_pooler_per_service_database(rendered):
    _overlay, _text, docs = rendered
    cluster = of_kind(docs, "Cluster")["firstline-pg"]
    assert cluster["spec"]["instances"] == 2
    roles = {r["name"] for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"]["owner"] for d in of_kind(docs, "Database").values()}
    poolers = set(of_kind(docs, "Pooler"))
    assert databases == {s: s for s in WITH_DATABASE} and roles == set(WITH_DATABASE)
    assert poolers == {f"firstline-pg-pooler-{s}" for s in WITH_DATABASE}
    for s in WITH_DATABASE:
        env = {e["name"]: e for e in of_kind(docs, "Deployment")[s]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert f"@firstline-pg-pooler-{s}:5432/{s}" in env[f"{s.upper()}_DATABASE_URL"]["value"]


def test_the_migration_job_upgrades_every_service_database(rendered):
    _overlay, _text, docs = rendered
    job = of_kind(docs, "Job")["firstline-migrate"]
    commands = {c["name"]: c["command"] for c in job["spec"]["template"]["spec"]["containers"]}
    assert commands == {s: ["firstline", "migrations", "upgrade", s] for s in WITH_DATABASE}


def test_monitoring_carries_every_alert_rule_and_dashboard(rendered):
    _overlay, _text, docs = rendered
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/firstline.yml").read_text())
    assert of_kind(docs, "PrometheusRule")["firstline"]["spec"]["groups"] == rules["groups"]
    dashboards = {
        n
        for d in of_kind(docs, "ConfigMap").values()
        if "grafana_dashboard" in d["metadata"]["labels"]
        for n in d["data"]
    }
    assert dashboards == {p.name for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")}
    assert of_kind(docs, "ServiceMonitor")["firstline"]["spec"]["endpoints"][0]["path"] == "/metrics"


# -- the ACL model of the locked broker -------------------------------------------------------


def acls_of(docs: list[dict]) -> dict[str, list[dict]]:
    return {name: u["spec"]["authorization"]["acls"] for name, u in of_kind(docs, "KafkaUser").items()}


def granted(acls: list[dict], kind: str, operation: str) -> set[str]:
    return {
        a["resource"].get("name", "") + ("*" if a["resource"].get("patternType") == "prefix" else "")
        for a in acls
        if a["resource"]["type"] == kind and (operation in a["operations"] or "All" in a["operations"])
    }


CONSUMER_OF = """
import functools
import json
from types import SimpleNamespace
from {service}.handlers import consumer

class StandIn:  # the settings a consumer is named from; any other attribute is never called here
    settings = SimpleNamespace(consumer_group="{service}", consumer_topics=None)
    def __getattr__(self, name):
        return StandIn()

c = consumer(StandIn())
print(json.dumps({{"group": c.name, "topics": list(c.topics)}}))
"""


@functools.cache
def consumer_of(service: str) -> dict:
    """The topics and group of the service's real consumer, built with a stand-in service
    object (in its own process: every service owns its tables, as in production)."""
    result = subprocess.run(
        [sys.executable, "-c", CONSUMER_OF.format(service=service)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize("service", [s for s in topics.SERVICES if s != "checkin"])  # checkin consumes nothing
def test_each_service_reads_exactly_what_its_consumer_subscribes_to(rendered, service):
    _overlay, _text, docs = rendered
    acls = acls_of(docs)[service]
    consumer = consumer_of(service)
    assert granted(acls, "topic", "Read") == set(consumer["topics"])
    assert granted(acls, "group", "Read") == {consumer["group"] + "*"}  # a prefix: its replicas and replays


def test_each_service_writes_only_its_own_topic_and_dead_letters(rendered):
    _overlay, _text, docs = rendered
    for service in topics.SERVICES:
        acls = acls_of(docs)[service]
        own = {f"{service}.events.v1", topics.dlq(service)}
        if service == "command":
            own |= {topics.PARTNER_HEALTH, topics.PARTNER_POLICE, topics.PARTNER_PROPERTY}
        if service == "checkin":
            own |= {topics.CHECKIN_RESIDENTS}
        assert granted(acls, "topic", "Write") == granted(acls, "topic", "Create") == own, service
        if service == "checkin":  # the replies it applies and the confirmations of erasures, nothing else
            confirming = {topics.DISPATCH_EVENTS, topics.COMMAND_EVENTS, topics.TIMEBANK_EVENTS}
            assert granted(acls, "topic", "Read") == {topics.MESSAGING_EVENTS, *confirming}
        ops = {op for a in acls for op in a["operations"]}
        assert not ops & {"All", "Delete", "Alter", "AlterConfigs"}, service
        assert granted(acls, "cluster", "Alter") == set(), service


def test_partners_read_only_their_department_in_groups_named_after_them(rendered):
    _overlay, _text, docs = rendered
    for department in ("health", "police", "property"):
        principal = f"partner-{department}"
        acls = acls_of(docs)[principal]
        assert granted(acls, "topic", "Read") == {f"partner.{department}.v1"}
        assert granted(acls, "topic", "Write") == set()
        assert granted(acls, "group", "Read") == {f"{principal}*"}  # a prefix: partner-health-*


def test_the_operator_administers(rendered):
    _overlay, _text, docs = rendered
    acls = acls_of(docs)["operator"]
    assert granted(acls, "topic", "Read") == {"*"} and granted(acls, "cluster", "Alter") == {""}
    assert set(acls_of(docs)) == {
        *topics.SERVICES,
        *topics.FOLLOWS,
        "partner-health",
        "partner-police",
        "partner-property",
        "operator",
    }


def test_each_service_connects_as_its_own_principal(rendered):
    _overlay, _text, docs = rendered
    users = set(of_kind(docs, "KafkaUser"))
    for service in (*topics.SERVICES, *topics.FOLLOWS):  # the portal follows as its own principal
        pod = of_kind(docs, "Deployment")[service]["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["KAFKA_USERNAME"]["value"] == service in users
        assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == service  # Strimzi's Secret
        # Schema checks and migrations need only the database: no broker credentials there.
        for step in pod["initContainers"]:
            assert not any(e["name"].startswith("KAFKA_") for e in step["env"]), service
