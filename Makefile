# Everything a new machine with Python 3.11 and make needs: each target creates .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
ENV ?= sandbox

# No traffic leaves this machine: Prefect and great-expectations otherwise send telemetry.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
# Local Prefect state (the sandbox's API database, settings) stays in the project, never in ~/.prefect.
export PREFECT_HOME ?= $(CURDIR)/.golive/prefect

.PHONY: install test go-live go-live-down plan destroy doctor bench clean soak

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==23.2.1"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

# Three workers, a test file each (a file's tests share its fixtures): the suite waits on servers, polls and
# subprocesses as much as it computes, and the two cores are busy throughout (README, "Measured"). On this
# 2-core machine (2026-12-03 evening, 253 tests): 11 min 50 s with three workers on a fresh clone (the limit is
# 15); two workers could not go below the sum of the tests' own times halved (15.5 min for 222 tests).
test: install
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not soak" $(PYTEST_ARGS)

# The whole go-live on the sandbox, run as production runs it: the emulated AWS control plane and the local
# data plane, a local Prefect server and worker, the go-live/$(ENV) deployment run, watched, and reported.
# Not part of `test` (12-18 min measured): `golive apply sandbox` SIGKILLed at 20 random moments across all
# phases under injected throttling and 5xx, applied to the end, then no duplicate, no untagged orphan and a
# plan that exits 0. SOAK_SEED=n replays a run. Its own sandbox in .golive/soak, stopped at the end.
soak: install
	$(BIN)/python -m tests.soak
	$(BIN)/python -m pytest -m soak

go-live: install
	@mkdir -p $(PREFECT_HOME)
	$(BIN)/golive sandbox up
	$(BIN)/golive go-live $(ENV)

# Stops everything go-live started: the Prefect worker and server, the app, Redis, PostgreSQL and moto.
go-live-down: install
	$(BIN)/golive sandbox down

plan: install  # exit 2 (changes planned) is a plan, not a failure of make
	$(BIN)/golive plan $(ENV) || [ $$? -eq 2 ]

destroy: install
	$(BIN)/golive destroy $(ENV)

doctor: install
	$(BIN)/golive doctor $(ENV)

bench: install
	$(BIN)/python benchmarks/orchestration.py

clean: go-live-down
	rm -rf .golive
