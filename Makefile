# The two commands of the README: `make demo` and `make test`. Each sets up its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the extras installed: `make test EXTRAS=dev,spark` adds pyspark (CI does: the Spark tests need it and Java)
EXTRAS ?= dev
comma := ,
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)-$(subst $(comma),+,$(EXTRAS))
# three workers on two cores: tests that wait on subprocesses, servers and PostgreSQL leave a core idle
PYTEST_ARGS ?= -n 3 --dist worksteal -q -p no:cacheprovider
# The wall clock each pass runs at (bank time, tests/clock/sitecustomize.py): SQLite inside the quiet hours,
# PostgreSQL at an ordinary hour, so a test that depends on the hour fails whenever it is written.
SQLITE_CLOCK ?= 23:30
POSTGRES_CLOCK ?= 10:00

.PHONY: setup demo test test-sqlite test-postgres lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	@# uv installs from PyPI in a quarter of pip's time (CI: 42 s against 165 s); pip if uv cannot
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[$(EXTRAS)]' || $(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/omnibank demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The Spark tests (skipped without pyspark) run in the PostgreSQL pass, where they compare all three engines;
# on a machine without PostgreSQL, in this one.
HAVE_POSTGRES := $(shell (command -v initdb || ls /usr/lib/postgresql/*/bin/initdb) >/dev/null 2>&1 && echo 1)
SQLITE_MARKS := $(if $(HAVE_POSTGRES),-m "not spark",)

test-sqlite: $(STAMP)
	OMNIBANK_TEST_CLOCK=$(SQLITE_CLOCK) $(BIN)/pytest $(PYTEST_ARGS) $(SQLITE_MARKS)

# Runs the whole suite again on a throwaway PostgreSQL server when PostgreSQL is installed
# (REQUIRE_POSTGRES=1 makes its absence an error, as in CI).
# (the console's browser tests run once, in the SQLite pass: the pages read through the same code either way)
test-postgres: $(STAMP)
	OMNIBANK_TEST_CLOCK=$(POSTGRES_CLOCK) scripts/with-postgres $(BIN)/pytest $(PYTEST_ARGS) -m "not e2e"

test: lint test-sqlite test-postgres

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .omnibank .pytest_cache .mypy_cache .ruff_cache
