PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RUN := runs/demo

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
	$(BIN)/pytest -q --durations=20

# The reliability suite (kills, faults, hostile input, security) and RELIABILITY.md from its results.
.PHONY: reliability
reliability: setup
	$(BIN)/python tests/reliability/regenerate.py

# A real hgapso search with training on the bundled digits, on the embedded local Ray. A second `make demo`
# starts a fresh run (the old one is kept as runs/demo.<time>).
demo: setup
	@if [ -e $(DEMO_RUN) ]; then mv $(DEMO_RUN) $(DEMO_RUN).$$(date +%Y%m%d-%H%M%S); fi
	$(BIN)/nas search search_configs/digits_quick.yaml --run-dir $(DEMO_RUN) --workers 2
	@echo
	$(BIN)/nas inspect $(DEMO_RUN)/best/architecture.yaml
	@echo
	$(BIN)/nas export $(DEMO_RUN)
	@echo
	$(BIN)/nas report $(DEMO_RUN)

clean:
	rm -rf $(VENV)
