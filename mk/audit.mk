# make audit (issue 22): Lynis on the deployed hosts, ssh-audit and testssl.sh
# from here; a JSON and a Markdown report in AUDIT_DIR, exit 1 when a host
# misses a threshold (docs/hosts.md, "Outside auditors").
#   make audit                        the local target of `make deploy`
#   make audit AUDIT_INVENTORY=.run/sandbox/inventory.json
AUDIT_INVENTORY ?= $(RUN_DIR)/$(TARGET)/inventory.json
AUDIT_DIR ?= $(RUN_DIR)/audit
AUDIT_MIN_LYNIS_INDEX ?= 85
.PHONY: audit

audit: setup system-deps
	@test -f "$(AUDIT_INVENTORY)" || { echo "error: no inventory at $(AUDIT_INVENTORY); run make deploy (or set AUDIT_INVENTORY)" >&2; exit 2; }
	$(BIN)/isoloir audit --inventory $(AUDIT_INVENTORY) --out $(AUDIT_DIR) --min-lynis-index $(AUDIT_MIN_LYNIS_INDEX)
