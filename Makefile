# `make demo` and `make test` work on a fresh machine: each sets up .venv first (once; again when pyproject changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The demo's digits come inside scikit-learn's wheel: installed for the demo only.
$(VENV)/.demo-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/gan demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
