# Two commands do everything on a fresh machine (Debian/Ubuntu, Python >= 3.11):
#   make demo   - installs RVA into .venv and runs the pipeline on the sample video (CPU)
#   make test   - installs the test tooling and runs the whole test suite
# Both are idempotent: a second run only re-installs when pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out/demo

.PHONY: demo test lint protos bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	scripts/install-test-tools.sh
	touch $@

demo: $(VENV)/.installed
	$(BIN)/rva demo --out $(OUT)

test: $(VENV)/.installed-test
	scripts/test.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check rva tests bench services triton_models scripts gateway deploy
	$(BIN)/mypy rva/core rva/tracking rva/analytics rva/config.py
	.tools/node_modules/.bin/buf lint

protos: $(VENV)/.installed-test
	PYTHON=$(BIN)/python scripts/gen_protos.sh

bench: $(VENV)/.installed-test
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/cpu_pipeline.py

clean:
	rm -rf $(VENV) .tools out .pytest_cache .ruff_cache .mypy_cache
