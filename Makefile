# Plain entry points: `make test` (the README's test command; CI runs exactly it)
# and `make demo`. Each creates .venv and installs the project into it first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test unit integration lint demo bench protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Validate the example specs the way a user's CI would, check style, the import
# contracts (pyproject.toml's [tool.importlinter]) and types,
# then run the whole suite. The 5-minute soak runs in its own pytest process
# beside the rest (3 xdist workers), so the suite takes as long as its longest
# part, not their sum; its summary is printed before the main one. Files go to
# workers whole, in collection order (--no-loadscope-reorder: xdist would otherwise
# hand out files with the most tests first, and a long one-test file last, alone). pytest exit
# code 5 ("no tests collected") is a failure. Every run prints its 15 slowest tests
# (--durations=15), so growth is visible.
test: $(STAMP)
	$(BIN)/rollouts validate rollouts/
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy controller serving benchmarks tests
	@mkdir -p build
	@$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 tests/integration/test_soak.py \
	  > build/soak.log 2>&1 & soak=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 -n 3 --dist loadfile \
	  --no-loadscope-reorder --ignore=tests/integration/test_soak.py 2>&1 | tee build/suite.log; rc=$${PIPESTATUS[0]}; \
	wait $$soak; soak_rc=$$?; \
	echo "--- soak (tests/integration/test_soak.py) ---"; \
	if [ $$soak_rc -ne 0 ]; then cat build/soak.log; else tail -n 1 build/soak.log; fi; \
	echo "--- suite ---"; tail -n 1 build/suite.log; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$soak_rc

unit: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 tests/integration

# The embedded default: a whole canary lifecycle on this machine, in a temp dir.
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/rollouts demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy controller serving benchmarks tests

protos: $(STAMP)
	$(BIN)/python -m serving.protos.build

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
