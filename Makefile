# FirstLine: `make demo` to see it work, `make test` to prove it.
# Everything installs itself: uv (into .tools/), Python packages (into .venv/),
# Apache Kafka (jars from Maven Central, into var/kafka/), PostgreSQL and Prometheus (Debian's packages).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
PYTEST := .venv/bin/pytest
TEST_GROUPS := common contract checkin supplies dispatch timebank command portal e2e observability
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092

.PHONY: browser-install help install kafka-up kafka-down pg-up pg-down prometheus-install up down status demo test test-unit bench schemas clean

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

kafka-up:
	deploy/kafka/kafka.sh start

kafka-down:
	deploy/kafka/kafka.sh stop

pg-up:
	deploy/postgres/postgres.sh start
	deploy/postgres/postgres.sh createdb firstline_test

pg-down:
	deploy/postgres/postgres.sh stop

# The observability tests run Debian's Prometheus (and promtool) against the stack.
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
	deploy/stack.sh up

down:
	deploy/stack.sh down
	deploy/kafka/kafka.sh stop

status:
	deploy/stack.sh status
	deploy/kafka/kafka.sh status

demo: up
	$(PY) deploy/demo/demo.py

# Each group runs in its own pytest process: every service owns its tables, as in production.
test: install kafka-up pg-up prometheus-install browser-install
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

schemas: install
	.venv/bin/firstline schemas

clean:
	deploy/stack.sh down || true
	deploy/kafka/kafka.sh stop || true
	rm -rf var .venv .tools
