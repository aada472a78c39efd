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
.PHONY: hosts-deps sandbox-build sandbox-up sandbox-down wheelhouse lint-hosts

# The sandbox's own packages on the machine (zstd, iproute2, ...) are listed in
# mk/commands.txt with everything else; hosts-deps is kept as a name for them.
hosts-deps: system-deps

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
