# `make demo` and `make test` work on a fresh clone: each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test planted mutate lint bench clean

install: $(STAMP)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/dlrecap train configs/xor.yaml
	$(BIN)/dlrecap eval

test: install
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

# Each patch in tests/planted plants one known bug; the tests named in it must fail.
planted: install
	$(BIN)/python tests/planted/run.py

# Mutation testing of the modules that load without TensorFlow ([tool.mutmut] in
# pyproject.toml). Up to an hour on 2 cores, so not in CI; results in bench/MUTATION.md.
# mutants/ keeps the verdicts, so a second run retests only what changed.
mutate: install
	$(BIN)/mutmut run
	$(BIN)/mutmut results

lint: install
	$(BIN)/ruff check dlrecap tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/inference.py

clean:
	rm -rf $(VENV) runs .pytest_cache mutants
