# Two commands do all the set-up: `make run` and `make test`. Needs only Python 3.11+ on the machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000
# A development run on your own machine: the public dev secret key, cookies over plain HTTP, the dev chain keys.
# Production never sets it (README.md, "Production").
export DATANETS_DEV ?= 1

.PHONY: run test test-fast lint format migrate demo worker web ci contracts contracts-check clean economics

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-assets.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements-dev.txt
	$(PIP) install -q --no-deps -r requirements-assets.txt
	@touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

## Create the venv, install, migrate, load the demo, then run the web server, a Celery worker for short jobs and one for
## long jobs (Ctrl-C stops all three).
run: demo
	$(PY) manage.py run_platform --host $(HOST) --port $(PORT)

## The whole suite on the embedded defaults (SQLite, filesystem broker, in-process chain): no services needed.
test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not worker and not browser and not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## One worker per queue class, so a long job never holds up a short one (README, "Workers").
worker: install
	trap 'kill 0' INT TERM EXIT; \
	$(VENV)/bin/celery -A config worker -Q default --concurrency 1 -n short@%h --loglevel INFO & \
	$(VENV)/bin/celery -A config worker -Q long,gpu --concurrency 1 -n long@%h --loglevel INFO & \
	wait

web: install
	$(PY) manage.py runserver $(HOST):$(PORT)

## Recompile the Solidity contracts with the pinned solc-js (needs node); `make contracts-check` fails if stale.
contracts:
	npm ci --prefix settlement/contracts --no-audit --no-fund
	cd settlement/contracts && node build.mjs

contracts-check:
	cd settlement/contracts && node build.mjs --check

## The adversarial economics simulation (benchmarks/economics/): SEEDS=3 worlds, table printed, charts in var/economics/.
SEEDS ?= 3
economics: install
	OMP_NUM_THREADS=2 $(PY) -m benchmarks.economics.run --seeds $(SEEDS)

ci:
	bash .ci/run

clean:
	rm -rf var/test-broker var/test-media var/test.sqlite3*
