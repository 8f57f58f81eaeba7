# Targets shared by people and CI. `make demo` and `make test` are the Quickstart.
PY ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# mypy and import-linter read packages from folders, so they get the installed layout as a tree
# of links: activestream/ with each mapped root folder (streams/ -> activestream/streams/, ...).
LINT_TREE := build/lint

.PHONY: install demo test test-unit test-integration lint docs up bench clean

# The editable install of a package-dir mapping goes through setuptools' import finder, and
# setuptools says so in a note on every install: only that note is silenced.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install -q -e '.[test,dev,faust,labelstudio]'
	$(BIN)/pip install -q --no-deps 'label-studio-sdk>=2.1,<2.2'  # (why --no-deps: pyproject's labelstudio extra)
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
	$(BIN)/python -m pytest tests/integration tests/contract

lint: $(STAMP)
	$(BIN)/ruff check .
	rm -rf $(LINT_TREE) && mkdir -p $(LINT_TREE)
	cp -as $(CURDIR)/activestream $(LINT_TREE)/activestream
	$(BIN)/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb'))['tool']['setuptools']['package-dir']; \
	    print('\n'.join(f'{d[k]} {k.removeprefix(\"activestream.\")}' for k in d if k != 'activestream'))" | \
	    while read -r dir sub; do cp -as $(CURDIR)/$$dir $(LINT_TREE)/activestream/$$sub; done
	cp -as $(CURDIR)/benchmarks $(LINT_TREE)/benchmarks
	cd $(LINT_TREE) && $(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache -p activestream
	cd $(LINT_TREE) && $(BIN)/lint-imports $(CURDIR)/pyproject.toml --no-cache

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Local distributed stack without Docker: Kafka (KRaft) + Redis + scorer, retrainer, dispatcher.
up: $(STAMP)
	$(BIN)/activestream up --env-file .activestream/env  # (the README sources it in another shell)

bench: $(STAMP)
	$(BIN)/activestream bench throughput --json benchmarks/results/throughput.json

clean:
	rm -rf $(VENV) build site reports .pytest_cache .mypy_cache .ruff_cache *.egg-info
