# FirstLine: `make demo` to see it work, `make test` to prove it.
# Everything installs itself: uv (into .tools/), Python packages (into .venv/),
# Apache Kafka (jars from Maven Central, into var/kafka/, with its CA and credentials),
# PostgreSQL, Prometheus and Alertmanager (Debian's packages).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
PYTEST := .venv/bin/pytest
TEST_GROUPS := common contract checkin supplies dispatch timebank command messaging portal portal_ops e2e observability security
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092
# KAFKA_NODES=3: `make kafka-up` / `make up` run a three-node cluster (deploy/kafka, ports
# 9092/9094/9096, var/kafka-cluster/; topics replicated 3 times, min.insync.replicas 2).
export KAFKA_NODES ?= 1

.PHONY: browser-install lint help install asyncapi-parser kafka-up kafka-down pg-up pg-down prometheus-install up down status demo test test-unit bench schemas clean

help:
	@echo "make demo    install, start Kafka and the services, play a day, show what each user sees"
	@echo "make test    install everything (Kafka, PostgreSQL) and run the whole suite"
	@echo "make up | down | status    start / stop the stack"
	@echo "make bench   run the benchmarks in bench/ (long; prints figures)"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.installed: $(UV) pyproject.toml uv.lock $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --all-packages --locked
	@touch $@

install: .venv/.installed

# The broker is locked (SASL_SSL, ACLs): start creates its CA and every principal's
# credentials under var/kafka/ from the topic catalog, which needs the Python packages.
kafka-up: install
	deploy/kafka/kafka.sh start

kafka-down:
	deploy/kafka/kafka.sh stop

pg-up:
	deploy/postgres/postgres.sh start
	deploy/postgres/postgres.sh createdb firstline_test

pg-down:
	deploy/postgres/postgres.sh stop

# The AsyncAPI documents are checked with the official parser (npm @asyncapi/parser, pinned
# by tests/common/asyncapi/package-lock.json); Node.js comes from Debian's packages if missing.
ASYNCAPI_PARSER := tests/common/asyncapi/node_modules/.installed
$(ASYNCAPI_PARSER): tests/common/asyncapi/package.json tests/common/asyncapi/package-lock.json
	@command -v npm >/dev/null || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get update >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y --no-install-recommends nodejs npm >/dev/null; }
	npm ci --prefix tests/common/asyncapi --no-audit --no-fund --loglevel=error
	@touch $@

asyncapi-parser: $(ASYNCAPI_PARSER)

# The observability tests run Debian's Prometheus (and promtool) against the stack, and check
# Alertmanager's configuration with amtool (prometheus.sh install installs both).
prometheus-install:
	deploy/prometheus/prometheus.sh install

# The portal's browser tests and QR sheets: Debian's Chromium (never a downloaded browser),
# its driver, and the Noto CJK fonts the sheets embed.
# axe-core (npm) checks the pages' accessibility in those tests.
AXE_VERSION := 4.14.1
browser-install:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk; }
	@[ -f .tools/browser/node_modules/axe-core/axe.min.js ] || npm install --prefix .tools/browser --no-audit --no-fund --silent axe-core@$(AXE_VERSION)

up: install kafka-up
	eval "$$(deploy/kafka/kafka.sh env)"; deploy/stack.sh up

down:
	deploy/stack.sh down
	deploy/kafka/kafka.sh stop

status:
	deploy/stack.sh status
	deploy/kafka/kafka.sh status

demo: up
	$(PY) deploy/demo/demo.py

# Each group runs in its own pytest process: every service owns its tables, as in production.
test: install lint kafka-up pg-up prometheus-install asyncapi-parser browser-install
	@export FIRSTLINE_TEST_PG_URL="$$(deploy/postgres/postgres.sh url postgres)" FIRSTLINE_REQUIRE_PG=1; \
	failed=""; \
	for group in $(TEST_GROUPS); do \
	  [ -d tests/$$group ] || continue; \
	  echo "== tests/$$group"; \
	  $(PYTEST) tests/$$group -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then failed="$$failed $$group"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi; \
	echo "all test groups passed"

test-unit: install
	@for group in $(TEST_GROUPS); do [ -d tests/$$group/unit ] && $(PYTEST) tests/$$group/unit -q -p no:cacheprovider || true; done

bench: install kafka-up pg-up
	@for b in bench/[!_]*.py; do echo "== $$b"; FIRSTLINE_BENCH_PG_URL="$$(deploy/postgres/postgres.sh url postgres)" $(PY) $$b || exit 1; done

# The local stack runs under Debian's supervisor (deploy/stack.sh installs it too); the
# deploy tests need it and the Kubernetes tools.
.PHONY: k8s-tools k8s-generate k8s-vendor supervisor-install
TEST_GROUPS += deploy
test: supervisor-install k8s-tools
supervisor-install:
	deploy/supervisor/install.sh

# Kubernetes (deploy/k8s): the pinned kustomize and kubeconform, the manifests generated from
# the code, and the vendored schemas the tests validate against (refreshed by hand).
k8s-tools:
	deploy/k8s/tools.sh

k8s-generate: install
	$(PY) deploy/k8s/generate.py

k8s-vendor: install
	deploy/k8s/vendor.sh

# The fault suite (tests/faults): SIGKILLs services, a Kafka node and the partition leader of a
# three-node cluster, restarts PostgreSQL under load, fills a disk, feeds every consumed topic
# garbage; counts what was sent, accepted, applied, lost and duplicated, and fails on any loss
# or duplicate. It starts its own Kafka node (19190), cluster (19170-19175), PostgreSQL (55470)
# and services (8700+); FIRSTLINE_FAULTS_* move them. `make test` runs it with short sizes.
.PHONY: faults
TEST_GROUPS += faults
faults: install
	deploy/postgres/postgres.sh install
	deploy/kafka/kafka.sh fetch
	flock /tmp/firstline-heavy.lock env FIRSTLINE_FAULTS=full $(PYTEST) tests/faults -q -p no:cacheprovider -rA

# Lint is part of the test: pyproject.toml's [tool.ruff] settings, checked and formatted.
lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

schemas: install
	.venv/bin/firstline schemas
	.venv/bin/firstline asyncapi

clean:
	deploy/stack.sh down || true
	deploy/kafka/kafka.sh stop || true
	rm -rf var .venv .tools
