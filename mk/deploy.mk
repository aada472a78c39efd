# make deploy / make demo / make up / make down (issue 8)
TARGET ?= local
RUN_DIR ?= .run
KEEP ?=
# aws target: the deploy account's SSH private key (its .pub beside it)
KEY_FILE ?=
VAULT_PASSWORD_FILE ?=
# aws target: SSH jump host to the private hosts ([user@]host[:port])
PROXY_JUMP ?=

.PHONY: deploy demo up down

up: setup system-deps hosts-deps
	$(PY) -m isoloir.controller.localtarget --run-dir $(RUN_DIR)/local/local up

# Stops the local target of `make deploy` and a demo kept with KEEP=1.
down:
	@if [ -x $(PY) ]; then \
	  for d in $(RUN_DIR)/local/local $(RUN_DIR)/demo/local; do \
	    [ -f $$d/state.json ] && $(PY) -m isoloir.controller.localtarget --run-dir $$d down; done; true; \
	 else echo "nothing to stop (no .venv)"; fi

deploy: setup system-deps hosts-deps
	$(BIN)/isoloir deploy --target $(TARGET) --run-dir $(RUN_DIR)/$(TARGET) \
	  $(if $(KEY_FILE),--key-file $(KEY_FILE),) \
	  $(if $(VAULT_PASSWORD_FILE),--vault-password-file $(VAULT_PASSWORD_FILE),) \
	  $(if $(PROXY_JUMP),--proxy-jump $(PROXY_JUMP),)

demo: setup system-deps hosts-deps
	$(BIN)/isoloir demo --run-dir $(RUN_DIR)/demo $(if $(KEEP),--keep,)
