# The single entry point: README and .ci/run call these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install install-dev system-deps kafka-jars demo test test-unit test-kafka lint bench schemas clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.runtime

install: $(VENV)/.runtime            ## runtime only (what `make demo` needs)

install-dev: $(VENV)/.dev system-deps kafka-jars   ## everything the tests need

system-deps:                          ## kcat (a non-Python Kafka client) and a JRE for the test broker
	bash scripts/install-system-deps.sh

kafka-jars: $(BIN)/python            ## resolve the pinned Apache Kafka jars from Maven Central (cached)
	$(BIN)/python scripts/kafka_broker.py fetch

demo: install                         ## the main job, on the embedded log
	$(BIN)/streamml demo

test: install-dev                     ## lint + every test, Kafka tests on a real broker started here
	$(BIN)/ruff check streamml tests bench scripts examples
	$(BIN)/mypy
	$(BIN)/python -m streamml.catalog check-schemas
	$(BIN)/pytest

test-unit: $(VENV)/.dev
	$(BIN)/pytest -m "not kafka"

test-kafka: install-dev
	$(BIN)/pytest -m kafka

lint: $(VENV)/.dev
	$(BIN)/ruff check streamml tests bench scripts
	$(BIN)/mypy

bench: install-dev                    ## benchmarks; each prints our figure beside a baseline
	$(BIN)/python bench/log_throughput.py

schemas: $(VENV)/.dev                 ## regenerate topics/schemas/*.json from the payload models
	$(BIN)/python -m streamml.catalog write-schemas

clean:
	rm -rf .streamml .streamml-state .pytest_cache .ruff_cache .mypy_cache
