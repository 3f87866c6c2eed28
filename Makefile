# Quick start: `make run` starts the app, `make test` runs the tests. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.spark-installed

BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: run test bench bench-setfit lint browser java postgres

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/streamlit run app.py

# Debian's chromium drives the end-to-end browser test; installed here so a fresh machine needs nothing else.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The Spark engine (fewshot.spark, tests/test_spark.py): pyspark in .venv, for the tests only,
# so `make run` never needs it; Java from Debian like chromium (slim images lack the man folder
# its post-install links into).
$(SPARK_STAMP): $(STAMP) requirements-spark.txt
	$(BIN)/pip install --quiet -r requirements-spark.txt
	touch $(SPARK_STAMP)

java:
	@command -v java >/dev/null || { mkdir -p /usr/share/man/man1 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

# Debian's PostgreSQL for the store's tests, which start a throwaway server of their own from its
# binaries (tests/postgres_server.py); the man folders are for its client's post-install links.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { mkdir -p /usr/share/man/man1 /usr/share/man/man7 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: $(STAMP) $(SPARK_STAMP) browser java postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m fewshot.bench --quick

# SetFit beside ours on the same draws: bench-only packages in their own environment, so the app's
# .venv never carries setfit. torch first: a looser pin pulls gigabytes of CUDA. Hours on two cores:
# PEER_MINUTES=90 stops the SetFit fits after that long and reports the draws that finished.
$(BENCH_STAMP): requirements.txt requirements-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet torch==2.13.0
	$(BENCH_VENV)/bin/pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

bench-setfit: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m fewshot.bench --quick --draws 5 --datasets sst2,ag_news \
		--peers setfit --name setfit $(if $(PEER_MINUTES),--peer-minutes $(PEER_MINUTES))
