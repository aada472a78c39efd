# Hosts (issue 4): sandbox hosts, the Ansible playbook and its linters.
#   make sandbox-up      boot $(SANDBOX_HOSTS) (systemd in its own namespaces, sshd on 127.0.0.x),
#                        write an inventory (SANDBOX_INIT=chroot: the former init-less host)
#   make sandbox-down    stop every recorded sandbox host (pids, then mounts)
#   make wheelhouse      wheels of isoloir and its dependencies for the agents role
#   make lint-hosts      ansible-lint (production profile) on playbooks/
SANDBOX_HOSTS ?= isoloir-host-1
SANDBOX_INVENTORY ?= .run/sandbox/inventory.json
SANDBOX_INIT ?= systemd
WHEELHOUSE ?= .run/wheelhouse
# Debian packages the sandbox needs on the machine itself, besides SYSTEM_PACKAGES
# (zstd packs the cached tree, iproute2 gives `ss` to the tests).
HOSTS_PACKAGES := zstd iproute2

.PHONY: hosts-deps sandbox-build sandbox-up sandbox-down wheelhouse lint-hosts

hosts-deps:
	@missing=""; for p in $(HOSTS_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: need root to install$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

sandbox-build: setup system-deps hosts-deps
	$(PY) -m isoloir.controller.sandbox build

sandbox-up: sandbox-build
	$(PY) -m isoloir.controller.sandbox up $(SANDBOX_HOSTS) --init $(SANDBOX_INIT) --inventory $(SANDBOX_INVENTORY)

sandbox-down:
	@if [ -x $(PY) ]; then $(PY) -m isoloir.controller.sandbox down; else echo "nothing to stop (no .venv)"; fi

wheelhouse: setup
	$(PY) -m isoloir.controller.inventory wheelhouse --out $(WHEELHOUSE)

lint-hosts: setup
	cd playbooks && PATH="$(CURDIR)/$(BIN):$$PATH" ansible-lint --profile production --strict

TEST_DEPS += hosts-deps
LINT_CMDS += { $(MAKE) --no-print-directory lint-hosts || exit 1; };
