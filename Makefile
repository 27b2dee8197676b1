# Set-up is part of every target: a fresh clone needs only `make run` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c  # a failing pip fails the target although its output is filtered
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# The newest simulation's directory, for `make audit` (or RUN=DIR).
RUN ?= $(shell ls -td .fedledger/simulations/*/ledger.json 2>/dev/null | head -n 1 | xargs -r dirname)

.PHONY: run audit test clean

run: $(INSTALLED)
	$(VENV)/bin/fedledger simulate

audit: $(INSTALLED)
	@test -n "$(RUN)" || { echo "no simulation to audit in .fedledger/simulations: run 'make run' first, or give RUN=DIR"; exit 1; }
	$(VENV)/bin/fedledger audit --simulation $(RUN) --report $(RUN)/audit.html

test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) -m pytest -n 2 --dist loadfile

$(INSTALLED): pyproject.toml examples/tabular/pyproject.toml package.json package-lock.json
	@echo "[1/4] a virtual environment in $(VENV)"
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	@echo "[2/4] FedLedger and its Python dependencies (Flower, PyTorch CPU, web3; a few minutes the first time)"
	$(PYTHON) -m pip install --progress-bar off -e ".[federation,examples,dev]" | sed -un -E '/^(Collecting|Installing|Successfully)/p'
	@echo "[3/4] the hospitals and banks app (examples/tabular)"
	$(PYTHON) -m pip install --quiet -e examples/tabular
	@echo "[4/4] the Solidity compiler, OpenZeppelin Contracts and anvil, from npm"
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) node_modules .fedledger .pytest_cache .hypothesis
