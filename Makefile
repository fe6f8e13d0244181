# The two set-up commands: `make run` (install + run the gateway on the quickstart
# config, with its demo upstream) and `make test` (install test needs + run the suite).
PYTHON ?= python3
PIP := $(PYTHON) -m pip

.PHONY: install run test lint bench

install:
	$(PIP) install -q -e .

run: install
	@$(PYTHON) -m agentgw_demo.echo --port 9001 & echo $$! > .demo.pid; \
	trap 'kill $$(cat .demo.pid) 2>/dev/null; rm -f .demo.pid' EXIT INT TERM; \
	$(PYTHON) -m agentgw run -f examples/quickstart.yaml

test:
	bash scripts/install-test-deps.sh
	$(PYTHON) -m ruff check src
	$(PYTHON) -m ruff format --check src
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check src
	$(PYTHON) -m ruff format --check src

bench: install
	$(PYTHON) bench/run.py http
