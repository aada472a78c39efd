# Isoloir — every target installs what it needs.
# Parts add their own targets and prerequisites in mk/*.mk.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Prerequisites of `make test`, `make lint`, `make bench`; parts append to these.
TEST_DEPS := setup
LINT_DEPS := setup
BENCH_DEPS := setup
LINT_CMDS :=

.PHONY: help setup test test-unit lint bench clean system-deps terraform-check

help:
	@echo "make setup      create .venv with the pinned packages (idempotent)"
	@echo "make test       unit and integration tests (needs root for the sandbox host)"
	@echo "make lint       ruff, mypy, yamllint and the Terraform and Ansible linters"
	@echo "make bench      benchmarks; figures written to bench/results/*.json"
	@echo "make demo       deploy the example policies locally and replay the incident"
	@echo "make deploy     validate, render, terraform, ansible, run the agents once"
	@echo "make audit      Lynis, ssh-audit, testssl against the deployed hosts; a report for the DPO"
	@echo "make clean      remove the venv, caches and local run state"

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Isoloir needs Python 3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

setup: $(VENV)/.installed terraform-check

terraform-check:
	@command -v terraform >/dev/null || { \
	  echo "error: terraform not found on PATH. Install Terraform >= 1.10 (https://developer.hashicorp.com/terraform/install)" >&2; exit 1; }

# Debian packages the tests and the local target use on the machine itself
# (the sandbox host installs its own inside its tree): every package named in
# mk/commands.txt, the list of external commands they run. After installing,
# each listed command must resolve on PATH, or setup stops naming it.
COMMANDS_FILE := mk/commands.txt
SYSTEM_PACKAGES := $(sort $(shell awk '!/^\#/ && NF >= 2 && $$2 != "-" {print $$2}' $(COMMANDS_FILE)))
SYSTEM_COMMANDS := $(shell awk '!/^\#/ && NF >= 2 && $$2 != "-" {print $$1}' $(COMMANDS_FILE))
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to install$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@absent=""; for c in $(SYSTEM_COMMANDS); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$c >/dev/null || absent="$$absent $$c"; done; \
	if [ -n "$$absent" ]; then \
	  echo "error: commands listed in $(COMMANDS_FILE) are still missing after installing their packages:$$absent" >&2; exit 1; fi

-include mk/*.mk

test: $(TEST_DEPS) system-deps
	$(BIN)/pytest -q --durations=15 tests

test-unit: setup
	$(BIN)/pytest -q tests/unit

lint: $(LINT_DEPS)
	$(BIN)/ruff check agents tests bench
	$(BIN)/ruff format --check agents tests bench
	$(BIN)/mypy
	$(BIN)/yamllint -s policies playbooks .yamllint
	$(LINT_CMDS)

bench: $(BENCH_DEPS)
	@mkdir -p bench/results
	@set -e; for b in bench/*/run.py; do echo "== $$b"; $(PY) $$b --out bench/results; done

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .mypy_cache .ruff_cache .hypothesis .run bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
