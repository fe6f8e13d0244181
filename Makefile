# The two set-up commands: `make run` (install + run the gateway on the quickstart
# config, with its demo upstream) and `make test` (install test needs + run the suite).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# the demo upstream's port (examples/quickstart.yaml proxies /echo and /sse to it)
DEMO_PORT ?= 9001

.PHONY: install run test lint bench

install:
	$(PIP) install -q -e .

# Ctrl-C reaches the gateway, which drains and exits; then the trap stops the demo
# upstream (which, started in the background, ignores Ctrl-C) and waits for it.
run: install
	@$(PYTHON) -m agentgw_demo.echo --port $(DEMO_PORT) & demo=$$!; echo $$demo > .demo.pid; \
	trap 'kill $$demo 2>/dev/null; wait $$demo 2>/dev/null; rm -f .demo.pid' EXIT INT TERM; \
	$(PYTHON) -m agentgw run -f examples/quickstart.yaml

test:
	bash scripts/install-test-deps.sh
	$(PYTHON) -m ruff check src
	$(PYTHON) -m ruff format --check src
	$(PYTHON) -m mypy
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check src
	$(PYTHON) -m ruff format --check src
	$(PYTHON) -m mypy

bench: install
	$(PYTHON) bench/run.py http
