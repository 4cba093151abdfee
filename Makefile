# Plain entry points: `make test` (the README's test command; CI runs exactly it)
# and `make demo`. Each creates .venv and installs the project into it first.
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

# Validate the example specs the way a user's CI would, check style and types,
# then run the whole suite. pytest exit code 5 ("no tests collected") is a failure.
test: $(STAMP)
	$(BIN)/rollouts validate rollouts/
	$(BIN)/ruff check .
	$(BIN)/mypy controller serving
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# The embedded default: a whole canary lifecycle on this machine, in a temp dir.
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/rollouts demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy controller serving

protos: $(STAMP)
	$(BIN)/python -m serving.protos.build

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
