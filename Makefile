# Every target that talks to Azure ML goes through $(AML): `make train AML="az ml"` runs the
# same YAML on Azure (workspace and resource group from `az configure --defaults`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AML ?= $(BIN)/amlocal
export PATH := $(abspath $(BIN)):$(PATH)
# Offline by default: MLflow 3 otherwise sends usage telemetry (also from `make ui`).
export MLFLOW_DISABLE_TELEMETRY ?= true

# Azure: workspace and resource group come from `az configure --defaults group=.. workspace=..`
# unless WORKSPACE / RESOURCE_GROUP are given. Endpoint names are unique per Azure region, so
# on Azure set ENDPOINT_SUFFIX (e.g. your initials): `make deploy AML="az ml" ENDPOINT_SUFFIX=jd`.
WORKSPACE ?=
RESOURCE_GROUP ?=
ENDPOINT_SUFFIX ?=
AML_FLAGS = $(if $(RESOURCE_GROUP),--resource-group $(RESOURCE_GROUP)) $(if $(WORKSPACE),--workspace-name $(WORKSPACE))
ONLINE_ENDPOINT ?= diabetes$(if $(ENDPOINT_SUFFIX),-$(ENDPOINT_SUFFIX))
BATCH_ENDPOINT ?= diabetes-batch$(if $(ENDPOINT_SUFFIX),-$(ENDPOINT_SUFFIX))
# The model `make deploy` releases; CI passes the exact version the pipeline registered.
MODEL ?= azureml:diabetes-model@latest
BATCH_DEPLOYMENT ?= endpoints/batch/diabetes/deployment.yml
# scripts/*.sh read these (scripts/lib.sh: AML, RESOURCE_GROUP, WORKSPACE).
export AML WORKSPACE RESOURCE_GROUP

.PHONY: promote publish
.PHONY: studio stop setup assets train ui validate test test-unit lint clean deploy batch azure-setup

# Bytecode: PYTHONDONTWRITEBYTECODE=1 is common (CI, containers), and then every process
# compiles what it imports, every time (MLflow + azure-ai-ml + sklearn: ~3.5x slower to import;
# bench/startup.py). So the venv is compiled at install (uv --compile-bytecode; pip compiles by
# default), and amlocal/ and src/ on every target (compileall skips what is up to date: ~0.1 s).
setup: $(VENV)/.installed
	$(if $(wildcard amlocal src),@$(BIN)/python -m compileall -q -j 0 $(wildcard amlocal src) >/dev/null)

# Installs with uv (from PyPI, pinned in pyproject.toml: a parallel resolver and installer with
# progress bars) into a plain venv; pip is the fallback when uv cannot be installed (UV=no forces it).
UV_VERSION ?= 0.13.8
UV ?= yes
$(VENV)/.installed: pyproject.toml
	@start=$$(date +%s); set -e; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "make setup: Python >= 3.11 is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1)); try PYTHON=python3.11" >&2; exit 2; }; \
	echo "make setup: creating $(VENV) and installing about 160 packages (about 0.8 GB)"; \
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	if [ "$(UV)" = yes ] && $(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION); then \
	  $(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -e '.[dev]'; \
	else \
	  echo "make setup: installing with pip (no progress per package; a few minutes)"; \
	  $(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip; \
	  $(BIN)/python -m pip install --disable-pip-version-check --compile -e '.[dev]'; \
	fi; \
	: "MLflow's empty SQLite store, made once per user: new workspaces copy it (amlocal/tracking.py)"; \
	$(BIN)/python -m amlocal.tracking; \
	touch $@; \
	echo "make setup: done in $$(( $$(date +%s) - start )) s; $(VENV) takes $$(du -sh $(VENV) | cut -f1)"

# Register the data asset and environments the pipeline references (idempotent: an
# identical version is not re-created).
# One line per command with its time (a first run validates each YAML with azure-ai-ml, a few
# seconds each; later runs hit the per-user cache). The clock is a file as each recipe line
# is its own shell; $(AML) lines stay plain for `make -n` (tests/e2e/project/test_workflows.py).
CLOCK = $(VENV)/.clock-$@
tick = @echo "make $@: $(1) in $$(( $$(date +%s) - $$(cat $(CLOCK)) )) s"; date +%s > $(CLOCK)
timed = start=$$(date +%s); $(2) && echo "make $@: $(1) in $$(( $$(date +%s) - start )) s"
assets: setup
	@date +%s > $(CLOCK)
	@$(AML) data create -f data/diabetes.yml -o none $(AML_FLAGS)
	$(call tick,data asset data/diabetes.yml registered)
	@$(AML) environment create -f environments/train.yml -o none $(AML_FLAGS)
	$(call tick,environment environments/train.yml registered)
	@$(AML) environment create -f environments/score.yml -o none $(AML_FLAGS)
	$(call tick,environment environments/score.yml registered)

train: assets
	@echo "make train: submitting pipelines/train.yml (a first run validates it with azure-ai-ml: seconds), then its steps stream"
	$(AML) job create -f pipelines/train.yml --stream -o none --set inputs.endpoint_name=$(ONLINE_ENDPOINT) $(if $(SET),$(foreach s,$(SET),--set $(s))) $(AML_FLAGS)

# The digits image classifier: prep -> sweep over model families -> evaluate -> register ->
# deploy to endpoints/online/digits.
.PHONY: train-digits digits-batch digits-request
train-digits: assets
	$(AML) data create -f data/digits.yml -o none $(AML_FLAGS)
	$(AML) environment create -f environments/digits-train.yml -o none $(AML_FLAGS)
	$(AML) environment create -f environments/digits-score.yml -o none $(AML_FLAGS)
	$(AML) job create -f pipelines/train-digits.yml --stream -o none $(if $(SET),$(foreach s,$(SET),--set $(s))) $(AML_FLAGS)

# Classify data/digits-batch/ with the digits batch endpoint (after make train-digits).
DIGITS_BATCH_ENDPOINT ?= digits-batch$(if $(ENDPOINT_SUFFIX),-$(ENDPOINT_SUFFIX))
digits-batch: setup
	$(AML) data create -f data/digits-batch.yml -o none $(AML_FLAGS)
	$(AML) batch-endpoint create -f endpoints/batch/digits/endpoint.yml -n $(DIGITS_BATCH_ENDPOINT) -o none $(AML_FLAGS)
	$(AML) batch-deployment create -f endpoints/batch/digits/deployment.yml -e $(DIGITS_BATCH_ENDPOINT) --set-default -o none $(AML_FLAGS)
	$(AML) batch-endpoint invoke -n $(DIGITS_BATCH_ENDPOINT) --input azureml:digits-batch:1 $(AML_FLAGS)

# An image file as a scoring request: make -s digits-request IMAGE=my7.png > request.json
# (URL=1 sends it as a URL instead of base64).
digits-request: setup
	@test -n "$(IMAGE)" || { echo "usage: make -s digits-request IMAGE=data/digits/7/0007.png > request.json" >&2; exit 2; }
	@$(BIN)/python endpoints/online/digits/encode_image.py $(if $(URL),--url) $(IMAGE)

# The MLflow UI on the store `amlocal workspace show` reports (AMLOCAL_HOME, MLFLOW_TRACKING_URI).
UI_PORT ?= 5000
ui: setup
	AMLOCAL_UI_PORT=$(UI_PORT) $(BIN)/python -m amlocal.ui

# The local studio (amlocal/studio): jobs and pipeline graphs, endpoints, models, schedules
# and monitors on http://127.0.0.1 (STUDIO_PORT, else 8765 when free, else any free port).
STUDIO_PORT ?=
studio: setup
	$(BIN)/amlocal studio $(if $(STUDIO_PORT),--port $(STUDIO_PORT))

validate: setup
	@$(call timed,every YAML checked with azure-ai-ml,$(BIN)/python -m amlocal.validate)

# The suite in parallel (pytest-xdist): TEST_WORKERS processes, by default one per logical CPU
# plus one, as tests also wait (on servers, timeouts): on 2 cores, tests/unit took 107 s with 2
# workers, 86 s with 3 and 114 s with 4 (medians of 2 runs on a shared box). --dist loadfile
# keeps a file on one worker, so its module fixtures (a trained workspace, a served endpoint)
# are built once. Tests marked `serial` run afterwards, alone. Durations: README.md.
TEST_WORKERS ?= $(shell echo $$(( $$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) + 1 )))
PYTEST = $(BIN)/python -m pytest -q
# Only the files that have one: collecting the whole suite again would cost ~40 s.
SERIAL_FILES = $(shell grep -rl --include='test_*.py' 'pytest.mark.serial' tests)
test: setup
	@echo "make test: the whole suite, $(TEST_WORKERS) workers (about 12 min on 2 idle cores)"
	@start=$$(date +%s); $(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m "not serial"; rc=$$?; \
	  $(PYTEST) -m serial $(SERIAL_FILES); rc2=$$?; [ $$rc2 -eq 5 ] && rc2=0; \
	  echo "make test: done in $$(( $$(date +%s) - start )) s"; [ $$rc -eq 0 ] && [ $$rc2 -eq 0 ]

# In-process tests only (tests/unit without the ones that start a process): about a minute.
test-unit: setup
	$(PYTEST) -n $(TEST_WORKERS) -m "not subprocess" tests/unit

lint: setup
	$(BIN)/ruff check amlocal tests bench src
	$(BIN)/ruff format --check amlocal tests bench src
	$(BIN)/mypy
	$(BIN)/actionlint
	$(BIN)/shellcheck -x scripts/*.sh

# Blue/green release of MODEL to the online endpoint: idle slot, smoke test, traffic shift,
# rollback on failure (scripts/blue-green.sh; the same script train-deploy.yml runs).
deploy: setup
	slot=$$(scripts/blue-green.sh deploy $(ONLINE_ENDPOINT) endpoints/online/diabetes $(MODEL)) && \
	  scripts/blue-green.sh promote $(ONLINE_ENDPOINT) endpoints/online/diabetes "$$slot"

# Batch endpoint + deployment, score data/diabetes-batch, check the predictions.
batch: setup
	scripts/batch-deploy.sh $(BATCH_ENDPOINT) endpoints/batch/diabetes $(BATCH_DEPLOYMENT) data/diabetes-batch

# One-time Azure setup (GITHUB_REPO=owner/name RESOURCE_GROUP=.. WORKSPACE=.. LOCATION=..).
azure-setup:
	scripts/azure-setup.sh

# Stops what the workspace ($AMLOCAL_HOME or .amlocal) runs: endpoint daemons, the scheduler,
# running jobs. Endpoints and schedules stay defined and start again when next used.
stop:
	-test -x $(BIN)/amlocal && $(BIN)/amlocal workspace stop -o table

# Stops everything (and deletes every local endpoint) before removing the workspace.
clean: stop
	-test -x $(BIN)/amlocal && for ep in $$($(BIN)/amlocal online-endpoint list --query "[].name" -o tsv 2>/dev/null); do \
	  $(BIN)/amlocal online-endpoint delete -n $$ep --yes -o none; done
	rm -rf .amlocal .pytest_cache .ruff_cache

# Dev -> prod through a registry (registries/registry.yml; docs/azure.md). The dev workspace is
# WORKSPACE's (the default one offline), prod is PROD_WORKSPACE (created offline if missing).
REGISTRY_YAML ?= registries/registry.yml
PROD_WORKSPACE ?= prod
PROD_RESOURCE_GROUP ?= $(RESOURCE_GROUP)
# Given to the two scripts only: exported to every recipe, it made `make test`'s own
# processes retrain in prod (tests/e2e/registries/test_publish.py).
PROD = PROD_WORKSPACE=$(PROD_WORKSPACE) PROD_RESOURCE_GROUP=$(PROD_RESOURCE_GROUP)

# After `make train`: share dev's champion to the registry (metrics and lineage kept) and
# release it blue/green in prod from the registry reference (scripts/promote.sh); nothing
# happens when prod already serves that version.
promote: setup
	$(PROD) DEV_WORKSPACE=$(WORKSPACE) scripts/promote.sh $(REGISTRY_YAML) diabetes-model $(ONLINE_ENDPOINT) endpoints/online/diabetes

# Publish the training pipeline's components and environment to the registry, then retrain in
# prod from them: pipelines/train.yml with its components replaced by the registry's (--set).
publish: setup
	$(PROD) scripts/publish.sh $(REGISTRY_YAML) pipelines/train.yml --set inputs.endpoint_name=$(ONLINE_ENDPOINT) $(if $(SET),$(foreach s,$(SET),--set $(s)))

# Online endpoint (issue 4): `make train` deploys each newly registered model blue/green.
# On Azure the name takes ENDPOINT_SUFFIX (names are unique per region): diabetes-<suffix>.
ENDPOINT ?= $(ONLINE_ENDPOINT)
.PHONY: endpoint invoke
endpoint: assets
	$(AML) online-endpoint create -f endpoints/online/diabetes/endpoint.yml -n $(ENDPOINT) -o none $(AML_FLAGS)
	$(AML) online-endpoint show -n $(ENDPOINT) --query scoring_uri $(AML_FLAGS)
invoke: setup
	$(AML) online-endpoint invoke -n $(ENDPOINT) -r endpoints/online/diabetes/sample-request.json $(AML_FLAGS)

# Production data and a model monitor (after make train): shifted rows to the diabetes
# endpoint's blue slot, then schedules/monitor-diabetes.yml runs at once and prints its
# signals table. NO_SHIFT=1 sends unshifted rows to green instead: no drift.
.PHONY: monitor
monitor: setup
	AML="$(AML)" $(BIN)/python scripts/monitor.py $(if $(NO_SHIFT),--no-shift)

# A new project from this repository as it is now, its tracked files (copier;
# docs/bring-your-own-code.md); not in the projects it makes (they have no newproject/):
#   make new-project NAME=churn [DEST=../churn] [TASK=classification] [DATA=f.csv TARGET=col]
#   [EXAMPLES=digits]. Exit 2, nothing written, on a bad NAME, DATA, TARGET or non-empty DEST.
.PHONY: new-project
new-project: setup
	@test -d newproject || { echo "make new-project: no newproject/ here (a generated project); run it in the template repository" >&2; exit 2; }
	$(BIN)/python -m newproject --name "$(NAME)" --dest "$(DEST)" --task "$(TASK)" \
	  --data "$(DATA)" --target "$(TARGET)" --examples "$(EXAMPLES)"
