#!/usr/bin/env bash
# Fetch the pinned schema sources from package registries and regenerate deploy/k8s/schemas/
# (committed; `make test` never fetches). Run by `make k8s-vendor` when a version changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBERNETES_VALIDATE=1.37.0   # PyPI wheel carrying the Kubernetes JSON Schemas
STRIMZI=1.2.0                # io.strimzi:api and io.strimzi:crd-generator on Maven Central
CNPG=v1.28.0                 # github.com/cloudnative-pg/cloudnative-pg (Go module)
PROMETHEUS_OPERATOR=v0.85.0  # github.com/prometheus-operator/prometheus-operator (Go module)
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT

"$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1 && PIP=("$ROOT/.venv/bin/python" -m pip) || PIP=(python3 -m pip)
"${PIP[@]}" download --quiet --no-deps "kubernetes-validate==$KUBERNETES_VALIDATE" -d "$WORK"

# Strimzi publishes its CRDs only as generated files: generate them as its build does.
cat > "$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>firstline</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$STRIMZI</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$STRIMZI</version></dependency>
  </dependencies></project>
POM
(cd "$WORK" && mvn -q dependency:build-classpath -Dmdep.outputFile=cp.txt)
JAVA="${STRIMZI_JAVA:-$(ls -d /usr/lib/jvm/temurin-2[1-9]-jdk-amd64 2>/dev/null | tail -1)/bin/java}"
mkdir -p "$WORK/strimzi"
"$JAVA" -cp "$(cat "$WORK/cp.txt")" io.strimzi.crdgenerator.CrdGenerator \
  --target-kube 1.16+ --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  "io.strimzi.api.kafka.model.kafka.Kafka=$WORK/strimzi/040-Crd-kafka.yaml" \
  "io.strimzi.api.kafka.model.topic.KafkaTopic=$WORK/strimzi/043-Crd-kafkatopic.yaml" \
  "io.strimzi.api.kafka.model.user.KafkaUser=$WORK/strimzi/044-Crd-kafkauser.yaml" \
  "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=$WORK/strimzi/045-Crd-kafkanodepool.yaml"

module_dir() { go mod download -json "$1@$2" | "$ROOT/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
rm -rf "$ROOT/deploy/k8s/schemas"
"$ROOT/.venv/bin/python" "$ROOT/deploy/k8s/vendor.py" \
  --kubernetes-wheel "$WORK"/kubernetes_validate-*.whl \
  --strimzi-crds "$WORK/strimzi" \
  --cnpg "$(module_dir github.com/cloudnative-pg/cloudnative-pg "$CNPG")" \
  --prometheus-operator "$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR")"
echo "schemas written to deploy/k8s/schemas (kubernetes-validate $KUBERNETES_VALIDATE, Strimzi $STRIMZI, CloudNativePG $CNPG, prometheus-operator $PROMETHEUS_OPERATOR)"
