# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: run test install migrate seed lint typecheck test-fast bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (Python 3.11+ is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(PY) -m portal migrate

seed: migrate
	$(PY) -m portal seed-demo

# Web + scheduler on 127.0.0.1:8000, SQLite file, demo shop; prints the demo links.
run: seed
	$(PY) -m portal serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# The whole suite, on SQLite and PostgreSQL, browser tests in the system Chromium.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PORTAL_TEST_PG_URL=$(PG_URL) $(PY) -m pytest

test-fast: $(STAMP)
	PORTAL_TEST_PG_URL=$(PG_URL) $(PY) -m pytest -m "not browser" -x

bench: $(STAMP)
	$(PY) bench/tracking_page.py

clean:
	rm -rf $(VENV) portal.db portal.db-wal portal.db-shm .pytest_cache .mypy_cache .ruff_cache
