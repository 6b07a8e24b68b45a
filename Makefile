# The README's commands. `make run` starts Orbit; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/orbit_ci
export ORBIT_PIPELINE_MODULES ?=

.PHONY: run orbit test test-sqlite test-postgres lint install migrate admin worker worker-dev bench bench-history bench-cpu bench-commit bench-memory bench-prune bench-hosts bench-limits chaos bench-api demo screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

admin: migrate
	PORT=$(PORT) $(BIN)/python manage.py ensure_admin

## Orbit on http://127.0.0.1:$(PORT) (web + worker through honcho; SQLite unless DATABASE_URL)
run: admin
	@echo "The command line: $(BIN)/orbit list (or: make orbit ARGS=list)"
	PATH="$(CURDIR)/$(BIN):$$PATH" ORBIT_BIND=127.0.0.1 $(BIN)/honcho start -p $(PORT) web worker

## The `orbit` command line without activating the venv: make orbit ARGS="run t-single"
orbit: install
	$(BIN)/orbit $(ARGS)

worker: migrate
	$(BIN)/python manage.py runworker

## The worker, restarted gracefully whenever code changes
worker-dev: migrate
	$(BIN)/python manage.py runworker --reload

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run

## Everything: lint, then the suite on SQLite and on PostgreSQL, the two side by side (each
## prints its output when it ends; they share no database, file or port): the suites wait
## on worker processes, servers and timeouts more than they compute, so together they take
## little longer than the longer alone
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres

test-sqlite: install
	env -u DATABASE_URL ORBIT_SQLITE_PATH=/tmp/orbit-test-sqlite.sqlite3 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install
	DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

## Orbit beside its peers in one table (~17 min; BENCH_QUICK=1 for a smoke run, BENCH_PEERS=0 for Orbit alone)
bench: install
	$(BIN)/python bench/bench_compare.py

## Drain throughput on an empty database, then beside 1,000,000 finished runs (PostgreSQL)
bench-history: install
	$(BIN)/python bench/bench_history.py

## CPU per run: the workers', their step processes' and PostgreSQL's (BENCH_CPU_ARGS="--tree /other/checkout --tree ." to compare)
bench-cpu: install
	$(BIN)/python bench/bench_cpu.py $(BENCH_CPU_ARGS)

## A worker's commit per run, now against the runs migration before (--before, default 0027) (PostgreSQL)
bench-commit: install
	$(BIN)/python bench/bench_commit.py $(BENCH_COMMIT_ARGS)

## One worker's memory (parent and step children) over 50,000 runs (PostgreSQL)
bench-memory: install
	$(BIN)/python bench/bench_memory.py

## Prune 1,000,000 finished runs to 100,000 while two workers drain: drain rate, lock waits, charts (PostgreSQL)
bench-prune: install
	$(BIN)/python bench/bench_prune.py

## 16 worker processes drain runs, directly and through PgBouncer in transaction pooling (PostgreSQL)
bench-hosts: install
	$(BIN)/python bench/bench_hosts.py

# Flow limits: unlimited drain with and without limits elsewhere, then 20/minute over five
# minutes across 4 workers (docs/FLOW-CONTROL.md, "Measured").
bench-limits: install
	$(BIN)/python bench/bench_limits.py drain
	$(BIN)/python bench/bench_limits.py rate

chaos: install
	$(BIN)/python bench/chaos.py

## The document pipeline end to end against local S3 (moto) and Veryfi stand-ins
demo: migrate
	PORT=$(PORT) $(BIN)/python manage.py document_demo

bench-api: install
	$(BIN)/python bench/bench_api.py

screenshots: install
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf $(VENV) staticfiles .mypy_cache .ruff_cache
