# bookwarm: `make run` warms the sample library on embedded defaults; `make test` runs the tests.
# Both create .venv from requirements.lock on first use: only Python 3.11+ is needed.

# The venv's interpreter: PYTHON=... if given, else the fastest Python 3.11+ on this machine that has venv,
# by a CPU probe of each (the best of three 0.07 s runs building dicts, much of what Prefect and bookwarm do).
# Builds differ more than versions: here Debian's python3.11 (libpython linked into the binary) is 11 % faster
# on the probe than pyenv's default build (--enable-shared, no PGO), and ran the suite in 336 s against 373 s,
# the same code (docs/decisions.md, "The suite, session 18").
SPEED_PROBE := import sys, time, venv, ensurepip; assert sys.version_info >= (3, 11); \
  f = lambda: (lambda t: [{"v": i, "w": str(i)} for i in range(300_000)] and time.process_time() - t)(time.process_time()); \
  print(round(min(f() for _ in range(3)), 4))
# Four rounds over the candidates, the fastest single probe wins: on a machine with noisy neighbours a slow
# spell over one candidate's probes picked the slower build in 2 of 6 clean clones with one or two rounds
# (session 19), and the suite took 10 % longer for it.
define FASTEST_PYTHON
for round in 1 2 3 4; do for p in python3 python3.14 python3.13 python3.12 python3.11 /usr/bin/python3 /usr/local/bin/python3; do \
  command -v $$p > /dev/null 2>&1 || continue; \
  t=$$($$p -c '$(SPEED_PROBE)' 2> /dev/null) || continue; \
  echo "$$t $$(command -v $$p)"; \
done; done | sort -n | head -n 1 | cut -d ' ' -f 2
endef
PYTHON ?= $(or $(shell $(FASTEST_PYTHON)),python3)
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

.PHONY: api compile bench-api serve-deployments install run test lint typecheck format bench-parse bench-providers bench-warm bench-gemini bench-read bench-dump bench-demand bench-sweep bench-scale bench-big bench-retention chaos services-up services-down clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(eval PYTHON := $(PYTHON))
	@echo "bookwarm: .venv from $(PYTHON) (PYTHON=... to choose another)"
	$(PYTHON) -c 'import sys; sys.exit("bookwarm needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/python -c 'import prefect.server.api.server'  # fails fast on a broken prefect/fastapi pair
	touch $(STAMP)

run: install compile
	$(BIN)/bookwarm demo $(LIBRARY)

# Each test's processes (CLIs, workers, flow runs: some 200) import the project's modules; where the
# environment says PYTHONDONTWRITEBYTECODE, each compiled them again (0.14 s of CPU a process).
# Compiled once here (only what changed), they are read from __pycache__ whatever that setting says.
compile: install
	$(BIN)/python -m compileall -q bookwarm flows tasks blocks deployments tests > /dev/null

test: install compile
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
