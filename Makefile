# Every target that talks to Azure ML goes through $(AML): `make train AML="az ml"` runs on Azure.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AML ?= $(BIN)/amlocal
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check amlocal tests bench src
	$(BIN)/ruff format --check amlocal tests bench src

clean:
	rm -rf .amlocal .pytest_cache .ruff_cache
