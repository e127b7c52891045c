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
	bench-streams bench-sla bench-growth bench-purge \
	lock lock-hashes pin-base-image image clean

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

# The SLA tick on 100,000 running clocks in a scratch database on the local PostgreSQL (or
# BENCH_DATABASE_URL): a tick with nothing due, with N due, its plan, and what clocks add to a
# create and a transition; about a minute. See bench/README.md.
bench-sla: $(RUN_STAMP)
	$(BIN)/python bench/sla_tick.py

# Growth: 5,000,000 tickets over 1,000 tenants, one holding 1,000,000, beside a small twin;
# every list shape's plan, then writes, reads and every list shape through `flowdesk serve` and
# wrk at 1 and 32 connections, the audit trail's growth and PgBouncer (BENCH_GROWTH_SCALE=0.1
# for a tenth; BENCH_GROWTH_ARGS=--reuse to measure seeded databases again). About an hour at
# full scale on two cores, half of it seeding. See bench/README.md, "Growth".
bench-growth: $(RUN_STAMP)
	VENV_PY=$(BIN)/python bash bench/setup.sh
	$(BIN)/python bench/growth.py --scale $${BENCH_GROWTH_SCALE:-1} $${BENCH_GROWTH_ARGS:-}

# The purges on a million rows: time, a concurrent writer's waits, the table after VACUUM.
bench-purge: $(RUN_STAMP)
	$(BIN)/python bench/purge.py

# Re-resolve the newest versions into constraints.txt (in a scratch venv, so nothing stale
# from .venv leaks in).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[embedded,test]'
	( echo "# Pinned versions of every dependency (runtime, embedded, test). Regenerate with:"; \
	  echo "#   make lock"; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^flowdesk' ) > constraints.txt
	rm -rf .lock-venv

# The production image's dependencies with their hashes (the Dockerfile installs them with
# --require-hashes --no-deps): the runtime dependencies at constraints.txt's versions and the
# build backend, resolved from PyPI alone (no local index or wheel directory), in a scratch venv.
# Run it after `make lock` or a change of dependencies (tests/faults/test_deployment.py checks
# the lock agrees with pyproject.toml and constraints.txt); it downloads every file to hash it.
# Resolved for the Python running it: 3.11.3 or later, as the image's (below that, redis needs
# async-timeout, which the lock then leaves out).
PIP_TOOLS_VERSION ?= 7.6.2
lock-hashes:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	  .lock-venv/bin/python -m pip install --quiet --index-url https://pypi.org/simple \
	  pip-tools==$(PIP_TOOLS_VERSION)
	env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	  .lock-venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --build-deps-for=wheel --index-url=https://pypi.org/simple --no-emit-index-url \
	  --constraint=constraints.txt --output-file=requirements.lock pyproject.toml
	rm -rf .lock-venv

# Pin the Dockerfile's base image to the current digest of its tag (needs docker with buildx
# and the registry).
BASE_TAG ?= python:3.11-slim
pin-base-image:
	digest=$$(docker buildx imagetools inspect $(BASE_TAG) --format '{{json .Manifest.Digest}}' | tr -d '"') \
	  && test -n "$$digest" \
	  && sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$(BASE_TAG)@$$digest|" Dockerfile \
	  && grep '^ARG BASE_IMAGE=' Dockerfile

# The production image (docs/deployment.md).
image:
	docker build -t flowdesk:latest .

clean:
	rm -rf $(VENV) .flowdesk .pytest_cache .mypy_cache .ruff_cache
