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

# Mutation testing of the listed modules, one group at a time against its own tests (long: about an hour on 2
# cores; mutmut keeps its copies and cache in mutants/, so a rerun tests only what changed). tests/MUTATION.md
# holds the scores and the survivors. `make mutation GROUPS="network trainer"` runs some groups.
.PHONY: mutation
mutation: setup
	nice -n 10 $(BIN)/python tests/mutation/run.py $(GROUPS)

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
