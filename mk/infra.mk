# Infrastructure (issue 3): Terraform lint, checkov in its own venv, the
# Terraform CLI config pointing at a local provider mirror when there is one.
#   make infra-check   fmt -check, validate, terraform test, checkov (0 failed checks)
#   make bench-infra   only the infra scale benchmark (bench/results/infra_scale_split.json)
.PHONY: infra-cli-config infra-init infra-check infra-roots-check bench-infra

CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
# The provider mirror is found at run time (never hard-coded); empty when none.
TF_MIRROR ?= $(shell $(PYTHON) -c 'import sys; sys.path.insert(0, "agents"); from isoloir.controller.infra.runner import find_provider_mirror as f; m = f(); print(m or "")' 2>/dev/null)
# The split layout's roots (ISOLOIR_TF_LAYOUT=split, infra/roots/), each with its own data dir.
TF_ROOTS := baseline region elections
TF_RUN_ENV = TF_DATA_DIR=$(CURDIR)/.run/infra/lint/tf-data TF_PLUGIN_CACHE_DIR=$(CURDIR)/.run/tf-plugin-cache CHECKPOINT_DISABLE=1 $(if $(TF_MIRROR),TF_CLI_CONFIG_FILE=$(CURDIR)/.run/terraformrc)

infra-cli-config:
	@mkdir -p .run/tf-plugin-cache .run/infra/lint
	@if [ -n "$(TF_MIRROR)" ]; then \
	  $(PY) -c 'import sys; from pathlib import Path; from isoloir.controller.infra.runner import write_cli_config; write_cli_config(Path(".run"), Path(sys.argv[1]))' "$(TF_MIRROR)"; \
	  echo "terraform: provider mirror $(TF_MIRROR)"; \
	else echo "terraform: no local provider mirror, terraform init downloads"; fi

infra-init: setup infra-cli-config
	$(TF_RUN_ENV) terraform -chdir=infra init -backend=false -input=false -lockfile=readonly >/dev/null

$(CHECKOV_VENV)/.installed:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found" >&2; exit 1; }
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

infra-check: infra-init $(CHECKOV_VENV)/.installed
	$(TF_RUN_ENV) terraform fmt -check -recursive infra
	$(TF_RUN_ENV) terraform -chdir=infra validate -no-color
	$(TF_RUN_ENV) terraform -chdir=infra test -no-color
	$(MAKE) --no-print-directory infra-roots-check
	$(CHECKOV_VENV)/bin/checkov -d infra --quiet --compact --framework terraform --skip-download

infra-roots-check: infra-cli-config
	@set -e; for r in $(TF_ROOTS); do \
	  echo "terraform validate infra/roots/$$r"; \
	  $(TF_RUN_ENV) TF_DATA_DIR=$(CURDIR)/.run/infra/lint/roots-$$r terraform -chdir=infra/roots/$$r init -backend=false -input=false -lockfile=readonly >/dev/null; \
	  $(TF_RUN_ENV) TF_DATA_DIR=$(CURDIR)/.run/infra/lint/roots-$$r terraform -chdir=infra/roots/$$r validate -no-color; \
	done

LINT_CMDS += { $(MAKE) --no-print-directory infra-check || exit 1; };

bench-infra: setup infra-cli-config
	@mkdir -p bench/results
	$(PY) bench/infra_scale/run.py --out bench/results
