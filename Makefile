# bookwarm: `make run` warms the sample library on embedded defaults; `make test` runs the tests.
# Both create .venv from requirements.lock on first use: only Python 3.11+ is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LIBRARY ?= examples/library.csv

# Keep Prefect's database and settings inside the project, and quiet.
export PREFECT_HOME ?= $(CURDIR)/.bookwarm/prefect
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

DEPTH ?= 2
# The suite waits on servers and subprocesses more than it computes: files run side by side.
TEST_WORKERS ?= 4
PYTEST_ARGS ?=

.PHONY: api bench-api serve-deployments install run test lint typecheck format bench-parse bench-providers bench-warm bench-gemini bench-read bench-dump bench-demand bench-sweep bench-scale bench-big bench-retention chaos services-up services-down clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; sys.exit("bookwarm needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/python -c 'import prefect.server.api.server'  # fails fast on a broken prefect/fastapi pair
	touch $(STAMP)

run: install
	$(BIN)/bookwarm demo $(LIBRARY)

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .

bench-parse: install
	$(BIN)/python -m tests.bench.bench_parse

bench-providers: install
	$(BIN)/python -m tests.bench.bench_providers

bench-warm: install
	$(BIN)/python -m tests.bench.bench_warm --authors 1000 --limited 1000

bench-gemini: install
	$(BIN)/python -m tests.bench.bench_gemini

bench-dump: install
	$(BIN)/python -m tests.bench.bench_dump

bench-read: install
	$(BIN)/python -m tests.bench.bench_read

bench-api: install
	$(BIN)/python -m tests.bench.bench_api

bench-sweep: install
	$(BIN)/python -m tests.bench.bench_sweep

bench-demand: install
	$(BIN)/python -m tests.bench.bench_demand

bench-big: install
	$(BIN)/python -m tests.bench.bench_big

bench-retention: install
	$(BIN)/python -m tests.bench.bench_retention

bench-scale: install
	$(BIN)/python -m tests.bench.bench_scale

chaos: install
	$(BIN)/python -m tests.chaos.run

serve-deployments: install
	$(BIN)/bookwarm deployments serve

api: install
	$(BIN)/bookwarm api $(API_ARGS)

services-up: install
	$(BIN)/bookwarm services up

services-down: install
	$(BIN)/bookwarm services down

clean:
	-$(BIN)/bookwarm services down
	rm -rf .bookwarm $(VENV)
