# make deploy / make demo / make up / make down (issue 8)
TARGET ?= local
RUN_DIR ?= .run

.PHONY: deploy demo up down

up: setup system-deps
	$(PY) -m isoloir.localtarget --run-dir $(RUN_DIR)/local/local up

down:
	@if [ -x $(PY) ]; then $(PY) -m isoloir.localtarget --run-dir $(RUN_DIR)/local/local down; \
	 else echo "nothing to stop (no .venv)"; fi

deploy: setup system-deps
	$(BIN)/isoloir deploy --target $(TARGET) --run-dir $(RUN_DIR)/$(TARGET)

demo: setup system-deps
	$(BIN)/isoloir demo --run-dir $(RUN_DIR)/demo
