# The commands the README and .ci/run use. `make demo` and `make test` work on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
# The newest PyTorch releases this project supports; pinned here so pip takes them from a local mirror when
# one is configured. Override on other platforms, e.g. `make test TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/dfdetect demo --out demo-run

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache
