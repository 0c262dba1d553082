PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_RUN := runs/demo

.PHONY: setup test check lint demo clean

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
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=20

# The fast tier for the edit loop: no Ray clusters, no real-process kills, no mutation run, no long trainings.
check: setup lint
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not full" --durations=10

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

# A real hgapso search with training on half the bundled digits (so that candidates spread), on the embedded
# local Ray; then the best network exported, retrained on the whole training split, and run by `nas predict` on
# a few test digits written as PNG files. A second `make demo` starts a fresh run (the old one is kept as
# runs/demo.<time>).
demo: setup
	@if [ -e $(DEMO_RUN) ]; then mv $(DEMO_RUN) $(DEMO_RUN).$$(date +%Y%m%d-%H%M%S); fi
	$(BIN)/nas search search_configs/digits_demo.yaml --run-dir $(DEMO_RUN) --workers 2
	@echo
	$(BIN)/nas inspect $(DEMO_RUN)/best/architecture.yaml
	@echo
	$(BIN)/nas export $(DEMO_RUN)
	@echo
	$(BIN)/nas train $(DEMO_RUN)/export/architecture.yaml --config $(DEMO_RUN)/config.yaml --full \
		--save $(DEMO_RUN)/retrained
	@echo
	$(BIN)/nas report $(DEMO_RUN)
	@echo
	$(BIN)/python examples/digits_test_images.py $(DEMO_RUN)/test-images 12
	$(BIN)/nas predict $(DEMO_RUN)/retrained $(DEMO_RUN)/test-images --out $(DEMO_RUN)/test-images.csv

clean:
	rm -rf $(VENV)
