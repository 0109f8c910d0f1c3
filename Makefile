# Jilu: `make run` starts everything, `make test` runs the whole suite. Both create .venv and
# install the pinned requirements when needed (and do nothing more when already done).

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check --quiet
# The first Python 3.11+ on PATH (override: make run PYTHON=/path/to/python3.12).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

.PHONY: run test test-postgres lint format typecheck bench soak fuzz clean openapi

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

# The suite on PostgreSQL only, at TEST_POSTGRES_URL (an admin URL: each database test and each
# launched stack gets a database of its own there, dropped after; see tests/databases.py).
# TEST_MARK selects tests by marker: .ci/run's second pass is TEST_MARK="database and not postgres".
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
TEST_MARK ?=
test-postgres: $(VENV)/.dev-deps
	JILU_TEST_DATABASE_URL='$(TEST_POSTGRES_URL)' $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup \
		$(if $(TEST_MARK),-m '$(TEST_MARK)')

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

# Schemathesis over the four services' OpenAPI (tests/fuzz), long: FUZZ_EXAMPLES per operation,
# the coverage and stateful phases too, a summary at the end. `make test` runs the same briefly.
FUZZ_EXAMPLES ?= 200
FUZZ_SEED ?= 1
fuzz: $(VENV)/.dev-deps
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) FUZZ_COVERAGE=1 FUZZ_STATEFUL=1 \
		$(PY) -m pytest tests/fuzz -n 0 -p no:cacheprovider --timeout 0 -rA

# The load benchmark's workload for SOAK_SECONDS (10 minutes), each service's RSS printed every
# 15 s (bench/load.py); SOAK_DATABASE=postgresql for PostgreSQL.
SOAK_SECONDS ?= 600
soak: $(VENV)/.dev-deps
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m bench.load --soak

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
