# Targets shared by people and CI. `make demo` and `make test` are the Quickstart.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration lint up bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev,faust]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/activestream demo

# Unit + integration (real redis-server; real Kafka when the distributed tests run).
test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Local distributed stack without Docker: Kafka (KRaft) + Redis + scorer, retrainer, dispatcher.
up: $(STAMP)
	$(BIN)/activestream up

bench: $(STAMP)
	$(BIN)/activestream bench throughput --json benchmarks/results/throughput.json

clean:
	rm -rf $(VENV) reports .pytest_cache .mypy_cache .ruff_cache *.egg-info
