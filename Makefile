# Foyer: `make run` starts the app, `make test` runs the whole test suite.
# Both install what they need on first use (a virtualenv, Python and npm packages, Chromium for the
# browser tests) and skip every step that is already done, so repeated runs start at once.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
HOST ?= localhost
PORT ?= 5000
# The Microsoft emulator's TLS port; its sign-in page for browsers is on the next one.
EMULATOR_PORT ?= $(shell echo $$(( $(PORT) + 3443 )))
# Parallel pytest workers (pytest-xdist): two per core, at most eight. Many tests spend their time waiting
# on real time (worker processes, the emulator's latency, browsers), so two per core keep the cores busy.
# Each worker gets its own databases.
PYTEST_WORKERS ?= $(shell n=$$(( $$(nproc) * 2 )); [ $$n -gt 8 ] && n=8; echo $$n)
# Idle workers take queued tests from busy ones, so a few long tests do not leave the end of a run to one.
PYTEST_DIST ?= worksteal
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="tests/routes -x"`.
PYTEST_ARGS ?=
CHROMIUM ?= /usr/bin/chromium

FLASK := $(VENV)/bin/flask --app wsgi
# apt-get and pg_ctlcluster need root; use sudo only when we are not root already.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Stamp files are named after a hash of what they install, so an edited requirements file or
# package-lock.json triggers a reinstall and nothing else does.
RUN_HASH := $(shell cat requirements.txt | sha256sum | cut -c1-16)
DEV_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
RUN_STAMP := $(VENV)/.installed-run-$(RUN_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_HASH)
ifneq ($(wildcard package.json),)
NPM_HASH := $(shell cat package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
NPM_STAMP := node_modules/.installed-$(NPM_HASH)
# The join page's call bundle (the ACS UI Library), built by esbuild from the locked packages.
CALL_BUNDLE := app/static/build/join-call.js
endif

.PHONY: help run test test-fast setup setup-dev chromium postgres lint translations clean

help:
	@echo "make run    install what is missing, migrate the database and serve Foyer on http://$(HOST):$(PORT)"
	@echo "make test   install what is missing (Chromium too), start PostgreSQL if needed, run every test"
	@echo "make test-fast  the edit loop: every test but the browser ones, on SQLite only"
	@echo "make lint   ruff check, and lint-imports (the direction of imports between packages)"
	@echo "make translations  extract marked strings, update every language's catalog, compile them"
	@echo "make clean  remove the virtualenv and node_modules"

# Three processes: the built-in Microsoft emulator (used while no Microsoft variables are set), the web
# server and the worker (reminders, retries, scheduled jobs). All three stop together on Ctrl+C, or
# when one of them exits.
run: setup
	@for port in $(PORT) $(EMULATOR_PORT) $$(( $(EMULATOR_PORT) + 1 )); do \
	  if $(VENV)/bin/python -c "import socket, sys; sys.exit(socket.socket().connect_ex(('$(HOST)', $$port)) != 0)"; then \
	    echo "Port $$port on $(HOST) is already in use: is Foyer already running? Stop it (Ctrl+C where it runs)," \
	      "or run on other ports: make run PORT=5001" >&2; exit 1; \
	  fi; \
	done
	@export HOST=$(HOST) PORT=$(PORT) EMULATOR_PORT=$(EMULATOR_PORT); \
	$(FLASK) db upgrade; \
	pids=""; trap 'kill $$pids 2>/dev/null; wait $$pids 2>/dev/null' EXIT; trap 'exit 0' INT TERM; \
	$(FLASK) emulator serve & pids="$$pids $$!"; \
	$(FLASK) run --host $(HOST) --port $(PORT) & pids="$$pids $$!"; \
	$(FLASK) worker & pids="$$pids $$!"; \
	$(FLASK) emulator wait-ready --url http://$(HOST):$(PORT)/; \
	echo; echo "  Foyer is running at http://$(HOST):$(PORT)  (Ctrl+C to stop)"; echo; \
	wait -n $$pids

# Python here may be told not to write bytecode (PYTHONDONTWRITEBYTECODE): then each pytest worker rewrites
# the asserts of every test module again (about 12 s of CPU per worker, before any test runs), and each
# process a test starts compiles the app from source. The test targets let Python keep its caches
# (__pycache__/, ignored by git) and, when there are none yet, fill them with two collections side by side
# before the workers start (once they exist, a worker rewrites only the modules edited since).
WARM_TEST_CACHES := export PYTHONDONTWRITEBYTECODE=; \
	if ! ls tests/__pycache__/*-pytest-*.pyc >/dev/null 2>&1; then \
		$(VENV)/bin/python -m pytest -q --collect-only tests/browser tests/integration tests/security tests/emulator \
			>/dev/null 2>&1 & \
		$(VENV)/bin/python -m pytest -q --collect-only tests/routes tests/services tests/forms $(wildcard tests/test_*.py) \
			>/dev/null 2>&1 || true; wait || true; \
	fi

test: setup-dev chromium postgres
	@$(WARM_TEST_CACHES); rc=0; $(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist $(PYTEST_DIST) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$rc

# The edit loop: SQLite only and no browser, so it needs neither PostgreSQL nor Chromium. `make test`
# (both databases, the browser tests) is still what has to pass.
test-fast: setup-dev
	@$(WARM_TEST_CACHES); rc=0; FOYER_TEST_DATABASES=sqlite $(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist $(PYTEST_DIST) -m "not browser" \
		$(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; \
	exit $$rc

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Attendee pages and emails in other languages (README "Languages"): collect the marked strings into the
# template, merge them into each app/translations/<lang>/LC_MESSAGES/messages.po, compile the .mo files
# (committed, so a fresh clone needs no step of its own). Lines wrap at 120, as the code's do, so a run changes
# only the entries that changed.
translations: setup-dev
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k N_ -k lazy_pgettext:1c,2 --no-location --sort-output \
		--width 120 --project Foyer -o app/translations/messages.pot .
	$(VENV)/bin/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching --ignore-obsolete \
		--width 120
	$(VENV)/bin/pybabel compile -d app/translations --statistics

setup: $(RUN_STAMP) $(NPM_STAMP) $(CALL_BUNDLE)

setup-dev: $(DEV_STAMP) $(NPM_STAMP) $(CALL_BUNDLE)

$(VENV)/bin/python:
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
		echo "Installing python3-venv (Debian ships venv separately)"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-run-*
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-*
	touch $(DEV_STAMP) $(RUN_STAMP)

ifneq ($(wildcard package.json),)
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CALL_BUNDLE): $(NPM_STAMP) $(wildcard frontend/*.js)
	npm run --silent build
endif

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "Installing Debian's Chromium for the browser tests"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# The tests use PostgreSQL at 127.0.0.1:5432 (see FOYER_TEST_PG_DSN in tests/conftest.py).
postgres:
	@if ! pg_isready -q -h 127.0.0.1 2>/dev/null && command -v pg_ctlcluster >/dev/null; then \
		echo "Starting PostgreSQL"; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for _ in $$(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done; \
	fi
	@if ! pg_isready -q -h 127.0.0.1 2>/dev/null && [[ "$${FOYER_TEST_DATABASES:-sqlite,postgresql}" == *postgresql* ]]; then \
		echo "PostgreSQL is not reachable at 127.0.0.1:5432. Install and start it (apt-get install postgresql)," >&2; \
		echo "or run only the SQLite half: make test FOYER_TEST_DATABASES=sqlite" >&2; \
		exit 1; \
	fi

clean:
	rm -rf $(VENV) node_modules app/static/build
