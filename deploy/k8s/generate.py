"""Generate the parts of the Kubernetes base that follow from the code, so they cannot drift:

- a KafkaTopic per topic of the catalog (libs/common/common/topics.py), replicated three
  times with `min.insync.replicas` 2;
- a KafkaUser per principal of the locked broker, with its ACLs: each service writes its
  own events topic and dead-letter topic and reads what it consumes in its own group; each
  partner department reads only `partner.<department>.v1`, in groups prefixed with its name;
  `operator` administers;
- per application: Deployment, Service, PodDisruptionBudget, CloudNativePG role, Database
  and Pooler, and its container in the migration Job;
- the PrometheusRule from deploy/prometheus/rules/ and the Grafana dashboards as ConfigMaps.

    python deploy/k8s/generate.py            # write deploy/k8s/base/generated/
    python deploy/k8s/generate.py --check    # exit 1 when the committed files are stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common import principals, topics

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "base" / "generated"
KAFKA_CLUSTER = "firstline"  # Strimzi names its bootstrap Service <cluster>-kafka-bootstrap
PG_CLUSTER = "firstline-pg"
REPLICAS = 3  # brokers; topics are replicated on all of them
PART_OF = {"app.kubernetes.io/part-of": "firstline"}


@dataclass(frozen=True)
class App:
    """One process of FirstLine as Kubernetes runs it."""

    name: str
    port: int
    database: bool = True
    kafka: bool = True
    replicas: int = 2
    cpu: str = "100m"
    memory: str = "256Mi"
    memory_limit: str = "512Mi"
    env: dict[str, str] = field(default_factory=dict)
    # Settings from the app's own Secret `firstline-<name>` (environment variable -> key):
    # what the service refuses to start without in production. The overlay creates it.
    secrets: dict[str, str] = field(default_factory=dict)
    # A Secret mounted as the token-signing keys directory (FIRSTLINE_KEYS_DIR): the portal's
    # keys (`firstline keys`) shared by its replicas, so each verifies what the other signed.
    signing_keys: bool = False

    @property
    def prefix(self) -> str:
        return self.name.upper()

    @property
    def events_topic(self) -> str:
        return f"{self.name}.events.v1"


SERVICE_PORTS = {
    "checkin": 8001,
    "supplies": 8002,
    "dispatch": 8003,
    "timebank": 8004,
    "command": 8005,
    "messaging": 8006,
}
APPS: tuple[App, ...] = (
    App("checkin", SERVICE_PORTS["checkin"]),
    App("supplies", SERVICE_PORTS["supplies"]),
    App("dispatch", SERVICE_PORTS["dispatch"]),
    App("timebank", SERVICE_PORTS["timebank"]),
    App(
        "command",
        SERVICE_PORTS["command"],
        memory="384Mi",
        memory_limit="768Mi",
        secrets={"COMMAND_PARTNER_REFERENCE_KEY": "partner-reference-key"},
    ),
    App("messaging", SERVICE_PORTS["messaging"], secrets={"MESSAGING_GATEWAY_SECRET": "gateway-secret"}),
    # The one origin a browser talks to; it calls the services over HTTP, keeps its accounts
    # and sessions in its own database, and follows checkin.events.v1 (no group, no outbox)
    # for its pages' live updates.
    App(
        "portal",
        8000,
        signing_keys=True,
        # the services it calls on a person's behalf, by their Service names
        env={f"PORTAL_{name.upper()}_URL": f"http://{name}:{port}" for name, port in SERVICE_PORTS.items()},
    ),
)
KEYS_MOUNT = "/etc/firstline/keys"


# -- Kafka -------------------------------------------------------------------------------


def kafka_topics() -> list[dict]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaTopic",
            "metadata": {"name": t.name.replace(".", "-"), "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
            "spec": {
                "topicName": t.name,
                "partitions": t.partitions,
                "replicas": REPLICAS,
                "config": t.config(REPLICAS),
            },
        }
        for t in topics.CATALOG
    ]


STRIMZI_RESOURCE = {"TOPIC": "topic", "GROUP": "group", "CLUSTER": "cluster", "TRANSACTIONAL_ID": "transactionalId"}
STRIMZI_PATTERN = {"LITERAL": "literal", "PREFIXED": "prefix"}


def strimzi_acls(rules: list[principals.Acl]) -> list[dict]:
    """Kafka ACLs as a KafkaUser's `spec.authorization.acls`: one entry per resource."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for rule in rules:
        merged.setdefault((rule.resource, rule.pattern, rule.name), []).append(rule.operation.title())
    out = []
    for (resource, pattern, name), operations in merged.items():
        if resource == "CLUSTER":
            target = {"type": "cluster"}
        else:
            target = {"type": STRIMZI_RESOURCE[resource], "name": name, "patternType": STRIMZI_PATTERN[pattern]}
        out.append({"resource": target, "operations": operations, "host": "*"})
    return out


def kafka_users() -> list[dict]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {"name": name, "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
            "spec": {
                "authentication": {"type": "scram-sha-512"},  # the operator keeps the password in Secret <name>
                "authorization": {"type": "simple", "acls": strimzi_acls(principals.acls(name))},
            },
        }
        for name in principals.principals()
    ]


# -- applications -----------------------------------------------------------------------


def labels(app: App) -> dict[str, str]:
    return {"app.kubernetes.io/name": app.name, **PART_OF}


def secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def app_env(app: App, *, kafka: bool) -> list[dict]:
    p = app.prefix
    env = [
        {"name": "FIRSTLINE_ENV", "value": "production"},
        {
            "name": "FIRSTLINE_TIMEZONE",
            "valueFrom": {"configMapKeyRef": {"name": "firstline-community", "key": "timezone"}},
        },
        {"name": "FIRSTLINE_PORTAL_URL", "value": "http://portal:8000"},  # whose JWKS verifies tokens
        {"name": f"{p}_HOST", "value": "0.0.0.0"},
        {"name": f"{p}_PORT", "value": str(app.port)},
        {"name": f"{p}_LOG_JSON", "value": "true"},
    ]
    if app.database:
        env += [
            secret_env("PG_PASSWORD", f"{PG_CLUSTER}-{app.name}", "password"),
            {
                "name": f"{p}_DATABASE_URL",
                "value": f"postgresql+asyncpg://{app.name}:$(PG_PASSWORD)@{PG_CLUSTER}-pooler-{app.name}:5432/{app.name}",
            },
            {"name": f"{p}_MIGRATE_ON_START", "value": "false"},  # the migration Job runs them once
        ]
    if kafka:
        env += [
            {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": f"{KAFKA_CLUSTER}-kafka-bootstrap:9093"},
            {"name": "FIRSTLINE_KAFKA_REPLICATION", "value": str(REPLICAS)},
            {"name": "KAFKA_SECURITY_PROTOCOL", "value": "SASL_SSL"},
            {"name": "KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
            {"name": "KAFKA_USERNAME", "value": app.name},
            secret_env("KAFKA_PASSWORD", app.name, "password"),
            {"name": "KAFKA_SSL_CAFILE", "value": "/etc/firstline/kafka-ca/ca.crt"},
        ]
    env += [secret_env(name, f"firstline-{app.name}", key) for name, key in app.secrets.items()]
    if app.signing_keys:  # the portal: its keys, and the address phones reach (the overlay's Ingress host)
        env.append({"name": "FIRSTLINE_KEYS_DIR", "value": KEYS_MOUNT})
        env.append(
            {
                "name": "PORTAL_PUBLIC_URL",
                "valueFrom": {"configMapKeyRef": {"name": "firstline-community", "key": "public-url"}},
            }
        )
    return env + [{"name": k, "value": v} for k, v in app.env.items()]


RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def container(app: App, name: str, command: list[str] | None = None) -> dict:
    """The app's container; with a command, a database-only step (migrations) that needs no broker."""
    kafka = app.kafka and command is None
    c: dict = {"name": name, "image": f"firstline/{app.name}", "env": app_env(app, kafka=kafka)}
    if command:
        c["command"] = command
    c["securityContext"] = RESTRICTED
    c["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    if kafka:
        c["volumeMounts"].append({"name": "kafka-ca", "mountPath": "/etc/firstline/kafka-ca", "readOnly": True})
    if app.signing_keys:
        c["volumeMounts"].append({"name": "signing-keys", "mountPath": KEYS_MOUNT, "readOnly": True})
    return c


def pod_volumes(app: App) -> list[dict]:
    volumes = [{"name": "tmp", "emptyDir": {}}]
    if app.kafka:  # Strimzi publishes the cluster CA's certificate in this Secret
        volumes.append({"name": "kafka-ca", "secret": {"secretName": f"{KAFKA_CLUSTER}-cluster-ca-cert"}})
    if app.signing_keys:
        volumes.append({"name": "signing-keys", "secret": {"secretName": f"firstline-{app.name}-keys"}})
    return volumes


POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def deployment(app: App) -> dict:
    main = container(app, app.name)
    main["ports"] = [{"name": "http", "containerPort": app.port}]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}}
    main["startupProbe"] = {**probe, "periodSeconds": 2, "failureThreshold": 60}
    main["livenessProbe"] = {**probe, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    main["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 3}
    main["resources"] = {
        "requests": {"cpu": app.cpu, "memory": app.memory},
        "limits": {"memory": app.memory_limit},
    }
    spec: dict = {"securityContext": POD_SECURITY, "terminationGracePeriodSeconds": 30}
    if app.database:
        # Start only on a schema at head: the migration Job brings it there.
        spec["initContainers"] = [
            {
                **container(app, "schema-at-head", ["firstline", "migrations", "current", app.name, "--check"]),
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            }
        ]
    spec["containers"] = [main]
    spec["volumes"] = pod_volumes(app)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app.name, "labels": labels(app)},
        "spec": {
            "replicas": app.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app.name}},
            "template": {"metadata": {"labels": labels(app)}, "spec": spec},
        },
    }


def service(app: App) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app.name, "labels": labels(app)},
        "spec": {
            "selector": {"app.kubernetes.io/name": app.name},
            "ports": [{"name": "http", "port": app.port, "targetPort": "http"}],
        },
    }


def disruption_budget(app: App) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": app.name, "labels": labels(app)},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": app.name}}},
    }


def network_policy() -> dict:
    """FirstLine's pods accept traffic only from their own namespace, the ingress controller
    (the portal) and Prometheus; the operators' Kafka and PostgreSQL pods keep their own rules."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "firstline-isolation", "labels": PART_OF},
        "spec": {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app.kubernetes.io/name", "operator": "In", "values": [a.name for a in APPS]}
                ]
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {}}]},
                {
                    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                    "ports": [{"port": a.port} for a in APPS if a.name == "portal"],
                },
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
            ],
        },
    }


def migration_job() -> dict:
    containers = []
    for app in APPS:
        if not app.database:
            continue
        c = container(app, app.name, ["firstline", "migrations", "upgrade", app.name])
        c["resources"] = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
        containers.append(c)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "firstline-migrate", "labels": {"app.kubernetes.io/name": "migrate", **PART_OF}},
        "spec": {
            "backoffLimit": 10,  # PostgreSQL may still be starting on a first install
            "ttlSecondsAfterFinished": 3600,  # gone before the next release applies a new one
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "migrate", **PART_OF}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": POD_SECURITY,
                    "containers": containers,
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


# -- PostgreSQL ---------------------------------------------------------------------------


def databases() -> list[dict]:
    docs: list[dict] = []
    for app in APPS:
        if not app.database:
            continue
        docs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Database",
                "metadata": {"name": f"{PG_CLUSTER}-{app.name}", "labels": labels(app)},
                "spec": {"cluster": {"name": PG_CLUSTER}, "name": app.name, "owner": app.name},
            }
        )
        docs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Pooler",
                "metadata": {"name": f"{PG_CLUSTER}-pooler-{app.name}", "labels": labels(app)},
                "spec": {
                    "cluster": {"name": PG_CLUSTER},
                    "type": "rw",
                    "instances": 2,
                    "pgbouncer": {
                        # Session pooling: asyncpg's prepared statements need their own server connection.
                        "poolMode": "session",
                        "parameters": {"max_client_conn": "200", "default_pool_size": "20"},
                    },
                },
            }
        )
    return docs


def managed_roles() -> list[dict]:
    """The Cluster's `spec.managed.roles`: one login role per service database."""
    return [
        {"name": app.name, "ensure": "present", "login": True, "passwordSecret": {"name": f"{PG_CLUSTER}-{app.name}"}}
        for app in APPS
        if app.database
    ]


# -- monitoring ---------------------------------------------------------------------------


def prometheus_rule() -> dict:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/firstline.yml").read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "firstline", "labels": PART_OF},
        "spec": {"groups": rules["groups"]},
    }


def dashboards() -> list[dict]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"firstline-dashboard-{path.stem}",
                "labels": {"grafana_dashboard": "1", **PART_OF},  # Grafana's dashboard sidecar loads these
            },
            "data": {path.name: json.dumps(json.loads(path.read_text()), indent=1, ensure_ascii=False) + "\n"},
        }
        for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    ]


# -- output -------------------------------------------------------------------------------


def files() -> dict[str, str]:
    header = "# Generated by deploy/k8s/generate.py from the code; do not edit (make k8s-generate).\n"

    def dump(docs: list[dict]) -> str:
        return header + "---\n".join(yaml.safe_dump(d, sort_keys=False, allow_unicode=True, width=120) for d in docs)

    apps = [doc for app in APPS for doc in (deployment(app), service(app), disruption_budget(app))]
    apps.append(network_policy())
    return {
        "kafka-topics.yaml": dump(kafka_topics()),
        "kafka-users.yaml": dump(kafka_users()),
        "apps.yaml": dump(apps),
        "migrate-job.yaml": dump([migration_job()]),
        "databases.yaml": dump(databases()),
        "postgres-roles.yaml": dump(
            [
                {
                    "apiVersion": "postgresql.cnpg.io/v1",
                    "kind": "Cluster",
                    "metadata": {"name": PG_CLUSTER},
                    "spec": {"managed": {"roles": managed_roles()}},
                }
            ]
        ),
        "prometheus-rule.yaml": dump([prometheus_rule()]),
        "dashboards.yaml": dump(dashboards()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the committed files differ")
    args = parser.parse_args(argv)
    wanted = files()
    if args.check:
        stale = sorted(n for n, text in wanted.items() if not (OUT / n).exists() or (OUT / n).read_text() != text)
        extra = sorted(p.name for p in OUT.glob("*.yaml") if p.name not in wanted) if OUT.exists() else []
        if stale or extra:
            print(
                f"deploy/k8s/base/generated is stale: {', '.join(stale + extra)} (run `make k8s-generate`)",
                file=sys.stderr,
            )
            return 1
        print("deploy/k8s/base/generated matches the code")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (OUT / name).write_text(text)
        print(OUT.relative_to(ROOT) / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
