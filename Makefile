# Set-up is part of every target: a fresh clone needs only `make run` or `make test`.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test clean

run: $(INSTALLED)
	$(VENV)/bin/fedledger simulate

test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PYTHON) -m pytest -n 2 --dist loadfile

$(INSTALLED): pyproject.toml examples/tabular/pyproject.toml package.json package-lock.json
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[federation,examples,dev]"
	$(PYTHON) -m pip install --quiet -e examples/tabular
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) node_modules .fedledger .pytest_cache .hypothesis
