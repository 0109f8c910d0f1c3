# Jilu: `make run` starts everything, `make test` runs the whole suite. Both create .venv and
# install the pinned requirements when needed (and do nothing more when already done).

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check --quiet
# The first Python 3.11+ on PATH (override: make run PYTHON=/path/to/python3.12).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

.PHONY: run test lint format typecheck bench clean openapi

$(PY):
	@test -n "$(PYTHON)" || { echo "Jilu needs Python 3.11 or newer on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements.txt | $(PY)
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt $(VENV)/.run-deps
	$(PIP) -r requirements-dev.txt
	@touch $@

run: $(VENV)/.run-deps
	$(PY) main.py

# Spread over the machine's cores (pytest-xdist); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= auto
test: $(VENV)/.dev-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(VENV)/.dev-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.dev-deps
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Every package: the files are listed in pyproject.toml ([tool.mypy] files).
typecheck: $(VENV)/.dev-deps
	$(PY) -m mypy

# Rewrite common/openapi/owners.json: the public operations of user_service and llm_service
# that web and mobile relay and merge into their /openapi.json (tests/contract checks it).
openapi: $(VENV)/.run-deps
	$(PY) -m common.openapi.snapshot

bench: $(VENV)/.dev-deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
