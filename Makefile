PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check nas tests benchmarks
	$(BIN)/ruff format --check nas tests benchmarks

test: setup lint
	$(BIN)/pytest -q

demo: setup
	$(BIN)/nas inspect examples/densenet_small.yaml

clean:
	rm -rf $(VENV)
