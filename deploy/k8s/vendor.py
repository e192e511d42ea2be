"""Vendor the JSON Schemas that `make test` validates the rendered manifests against.

Nothing is fetched at test time: this script is run by hand (`make k8s-vendor`) when a
pinned version changes, and its output under deploy/k8s/schemas/ is committed. Sources,
all from package registries:

- Kubernetes: the schemas shipped in the `kubernetes-validate` wheel (PyPI), made
  standalone (their shared definitions inlined) for the kinds the manifests use;
- Strimzi: the CRDs generated, as Strimzi's own build does, by `io.strimzi:crd-generator`
  from the `io.strimzi:api` classes (Maven Central; the generator needs Java 21+);
- CloudNativePG and the Prometheus operator: the CRDs in their Go module sources.

    python deploy/k8s/vendor.py --kubernetes-wheel W.whl --strimzi-crds DIR --cnpg DIR --prometheus-operator DIR
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
KUBERNETES_VERSION = "v1.33.0"
KINDS = (  # kubeconform's file names: <kind>[-<group>]-<version>.json
    "namespace-v1", "configmap-v1", "secret-v1", "service-v1", "serviceaccount-v1",
    "deployment-apps-v1", "job-batch-v1", "ingress-networking-v1",
    "networkpolicy-networking-v1", "poddisruptionbudget-policy-v1",
)  # fmt: skip
STRIMZI = ("040-Crd-kafka.yaml", "043-Crd-kafkatopic.yaml", "044-Crd-kafkauser.yaml", "045-Crd-kafkanodepool.yaml")
CNPG = ("postgresql.cnpg.io_clusters.yaml", "postgresql.cnpg.io_databases.yaml", "postgresql.cnpg.io_poolers.yaml")
PROMETHEUS = ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")


def standalone(kind: dict, definitions: dict) -> dict:
    """The kind's schema with every definition it reaches copied under its own $defs."""
    needed: dict[str, dict] = {}

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and "#/$defs/" in ref:
                name = ref.split("#/$defs/", 1)[1]
                node["$ref"] = f"#/$defs/{name}"
                if name not in needed:
                    needed[name] = json.loads(json.dumps(definitions[name]))
                    walk(needed[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(kind)
    kind["$defs"] = dict(sorted(needed.items()))
    return kind


def kubernetes(wheel: Path) -> None:
    prefix = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES_VERSION}-local-strict/"
    out = SCHEMAS / "kubernetes"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as whl:
        definitions = json.loads(whl.read(prefix + "_definitions.json"))["$defs"]
        for name in KINDS:
            schema = standalone(json.loads(whl.read(f"{prefix}{name}.json")), definitions)
            (out / f"{name}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


def strict(node):
    """As kubeconform's openapi2jsonschema does in strict mode: no unknown fields where the
    CRD lists its properties, and int-or-string accepts both."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
            node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def crd(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"].lower()
    out = SCHEMAS / "crds" / group
    out.mkdir(parents=True, exist_ok=True)
    for version in doc["spec"]["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        (out / f"{kind}_{version['name']}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubernetes-wheel", type=Path, required=True)
    parser.add_argument("--strimzi-crds", type=Path, required=True)
    parser.add_argument("--cnpg", type=Path, required=True, help="the cloudnative-pg module directory")
    parser.add_argument("--prometheus-operator", type=Path, required=True, help="its module directory")
    args = parser.parse_args()
    kubernetes(args.kubernetes_wheel)
    for name in STRIMZI:
        crd(args.strimzi_crds / name)
    for name in CNPG:
        crd(args.cnpg / "config/crd/bases" / name)
    for name in PROMETHEUS:
        crd(args.prometheus_operator / "example/prometheus-operator-crd" / name)
    sources = SCHEMAS / "SOURCES"
    sources.write_text(re.sub(r"\n\s+", "\n", __doc__.split("Sources,", 1)[1]).strip() + "\n")


if __name__ == "__main__":
    main()
