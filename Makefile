# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
# Page languages besides English (the msgids): portal/locale/<lang>/LC_MESSAGES/messages.po.
LOCALES := it pl es
LOCALE_DIR := portal/locale
POT := $(LOCALE_DIR)/messages.pot
MO := $(foreach l,$(LOCALES),$(LOCALE_DIR)/$(l)/LC_MESSAGES/messages.mo)

.PHONY: run test install migrate seed lint typecheck test-fast bench clean messages

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (Python 3.11+ is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Installed, with the catalogs compiled (.mo files are built here, never committed).
install: $(STAMP) $(MO)

$(LOCALE_DIR)/%/LC_MESSAGES/messages.mo: $(LOCALE_DIR)/%/LC_MESSAGES/messages.po | $(STAMP)
	$(VENV)/bin/pybabel compile --statistics -D messages -l $* -i $< -o $@

# For developers, after adding or changing words on a page: extract the msgids (babel.cfg)
# and merge them into each catalog; then translate what is new (the tests refuse a page
# string without a translation).
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -o $(POT) --add-location=file --sort-by-file \
	  --no-wrap --add-comments=Translators: --project=order-portal --msgid-bugs-address= .
	@for l in $(LOCALES); do \
	  test -f $(LOCALE_DIR)/$$l/LC_MESSAGES/messages.po || \
	    $(VENV)/bin/pybabel init -D messages -i $(POT) -d $(LOCALE_DIR) -l $$l --no-wrap; \
	done
	$(VENV)/bin/pybabel update -D messages -i $(POT) -d $(LOCALE_DIR) --no-wrap \
	  --ignore-obsolete

migrate: install
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
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PORTAL_TEST_PG_URL=$(PG_URL) $(PY) -m pytest

test-fast: install
	PORTAL_TEST_PG_URL=$(PG_URL) $(PY) -m pytest -m "not browser" -x

bench: install
	$(PY) bench/tracking_page.py

clean:
	rm -rf $(VENV) portal.db portal.db-wal portal.db-shm .pytest_cache .mypy_cache .ruff_cache $(MO)
