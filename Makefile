# Every target that talks to Azure ML goes through $(AML): `make train AML="az ml"` runs the
# same YAML on Azure (workspace and resource group from `az configure --defaults`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AML ?= $(BIN)/amlocal
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup assets train ui validate test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# Register the data asset and environments the pipeline references (idempotent: an
# identical version is not re-created).
assets: setup
	$(AML) data create -f data/diabetes.yml -o none
	$(AML) environment create -f environments/train.yml -o none
	$(AML) environment create -f environments/score.yml -o none

train: assets
	$(AML) job create -f pipelines/train.yml --stream -o none $(if $(SET),$(foreach s,$(SET),--set $(s)))

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath .amlocal)/mlflow.db --host 127.0.0.1 --port 5000

validate: setup
	$(BIN)/python -m amlocal.validate

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check amlocal tests bench src
	$(BIN)/ruff format --check amlocal tests bench src

clean:
	rm -rf .amlocal .pytest_cache .ruff_cache

# Online endpoint (issue 4): `make train` deploys each newly registered model blue/green.
ENDPOINT ?= diabetes
.PHONY: endpoint invoke
endpoint: assets
	$(AML) online-endpoint create -f endpoints/online/diabetes/endpoint.yml -o none
	$(AML) online-endpoint show -n $(ENDPOINT) --query scoring_uri
invoke: setup
	$(AML) online-endpoint invoke -n $(ENDPOINT) -r endpoints/online/diabetes/sample-request.json
