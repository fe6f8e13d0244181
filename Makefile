# The two set-up commands: `make run` (install + run the gateway on the quickstart
# config, with its demo upstream) and `make test` (install test needs + run the suite).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# the demo upstreams' ports (examples/quickstart.yaml proxies to them): the echo server
# (/echo, /sse), the OpenAI-compatible server (the LLM port's model "demo"), the A2A agent (/a2a)
DEMO_PORT ?= 9001
DEMO_LLM_PORT ?= 9002
DEMO_A2A_PORT ?= 9003

.PHONY: install run test lint bench ui

install:
	$(PIP) install -q -e .

# Ctrl-C reaches the gateway, which drains and exits; then the trap stops the demo
# upstreams (which, started in the background, ignore Ctrl-C) and waits for them.
# The web UI is then at http://localhost:15000/ui/.
run: install
	@$(PYTHON) -m agentgw_demo.echo --port $(DEMO_PORT) & demo=$$!; \
	$(PYTHON) -m agentgw_demo.openai_server --port $(DEMO_LLM_PORT) & llm=$$!; \
	$(PYTHON) -m agentgw_demo.a2a_agent --port $(DEMO_A2A_PORT) & a2a=$$!; \
	echo $$demo $$llm $$a2a > .demo.pid; \
	trap 'kill $$demo $$llm $$a2a 2>/dev/null; wait $$demo $$llm $$a2a 2>/dev/null; rm -f .demo.pid' EXIT INT TERM; \
	echo "agentgw: the web UI will be at http://localhost:15000/ui/"; \
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

# The web UI's assets (src/agentgw/admin/ui/), built from ui/ with the versions of
# ui/package-lock.json; the shipped assets are what this makes, byte for byte.
ui:
	npm ci --prefix ui --no-audit --no-fund
	node ui/build.mjs
