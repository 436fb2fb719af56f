# edgesmith: `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist
QUICK := profiles/quick
MLFLOW_PORT ?= 5000
# make exp: PARAMS="section.key=v1,v2 ..." (one experiment per combination), PROFILE (folder of the
# params.yaml and dvc.yaml to sweep), JOBS (experiments at once), TARGET (the stage to reproduce)
PROFILE ?= .
JOBS ?= 2
# make search-distributed: WORKERS (worker processes beside the chief), PORT (the chief's oracle port; default: a free one)
WORKERS ?= 2
TARGET ?= $(PROFILE)/dvc.yaml:report
# make push / pull: REMOTE (a DVC remote's name; default: the default remote), TARGETS (dvc.yaml files or stages; default all)
REMOTE ?=
TARGETS ?=
# Stages run `python -m stages.<name>`: the venv's python must come first.
export PATH := $(CURDIR)/$(BIN):$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup arm-setup repro repro-quick exp search-distributed push pull test test-all test-slow lint ui mlflow-server report results doctor bench-stability clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: ## Build .venv with the pinned stack, install edgesmith, fetch Fashion-MNIST (Debian), set up git/DVC
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=600 update -qq && $(SUDO) apt-get -o DPkg::Lock::Timeout=600 install -y -qq dataset-fashion-mnist; fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	@git config user.email >/dev/null || git config user.email "edgesmith@localhost"
	@git config user.name >/dev/null || git config user.name "edgesmith"
	@echo "setup done: $$($(BIN)/python --version), $$($(BIN)/dvc --version | head -1) (dvc)"
	@bash pipelines/edge/arm/setup.sh || echo "setup: no emulated-ARM harness (see the line above); arm_cost falls back to the roofline"

arm-setup: ## Build the emulated-ARM harness into .arm/ (QEMU + counting plugin, arm64 Python, aarch64 runtime); make setup tries it too
	bash pipelines/edge/arm/setup.sh

repro: ## Run every stage of dvc.yaml (dvc repro): the vision chain with search and calibration, and the graph pipeline
	$(BIN)/dvc repro

repro-quick: ## Run the same stages on the quick profile (profiles/quick: a few thousand images, 2 epochs)
	@cmp -s dvc.yaml $(QUICK)/dvc.yaml || cp dvc.yaml $(QUICK)/dvc.yaml
	@$(BIN)/edgesmith params --profile $(QUICK) --check >/dev/null || $(BIN)/edgesmith params --profile $(QUICK)
	$(BIN)/dvc repro $(QUICK)/dvc.yaml

exp: ## Sweep in parallel: make exp PARAMS="teacher.epochs=2,4,8" [PROFILE=profiles/quick] [JOBS=2]; then dvc exp show, edgesmith compare
	@[ -n "$(PARAMS)" ] || { echo 'usage: make exp PARAMS="section.key=v1,v2 ..." [PROFILE=profiles/quick] [JOBS=2] [TARGET=stage]' >&2; exit 2; }
	$(BIN)/dvc exp run --queue --force $(TARGET) $(foreach p,$(PARAMS),-S '$(if $(filter .,$(PROFILE)),,$(PROFILE)/params.yaml:)$(p)')
	$(BIN)/dvc queue start -j $(JOBS)
	@while $(BIN)/dvc queue status 2>/dev/null | grep -qwE 'Queued|Running'; do sleep 10; done
	@$(BIN)/dvc queue status
	@! $(BIN)/dvc queue status | grep -qw 'Failed' || { echo "failed experiments: dvc queue logs NAME shows why" >&2; exit 1; }
	$(BIN)/dvc exp show --no-pager --md --only-changed

search-distributed: ## The search stage as a keras-tuner chief + WORKERS workers on this host: make search-distributed WORKERS=2 [PROFILE=profiles/quick] [PORT=...]
	scripts/search-distributed.sh $(PROFILE) $(WORKERS) $(PORT)

push: ## Share what the pipeline made: data, models, plots and the run cache to the DVC remote (REMOTE=name; default: the -d one)
	$(BIN)/dvc push --run-cache $(if $(REMOTE),-r $(REMOTE)) $(TARGETS)

pull: ## Get a teammate's (or CI's) outputs from the DVC remote instead of re-running: then dvc status is clean
	$(BIN)/dvc pull --run-cache $(if $(REMOTE),-r $(REMOTE)) $(TARGETS)

test: ## Fast test suite (everything not marked slow)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: ## Only the slow tests: the real stages on the quick profile in a temporary copy
	$(BIN)/python -m pytest -m slow -q

test-all: ## Every test, slow ones included
	$(BIN)/python -m pytest -q

lint: ## ruff over the code, actionlint over the CI workflow
	$(BIN)/ruff check pipelines stages tests benchmarks scripts
	$(BIN)/actionlint .github/workflows/*.yml

ui: ## MLflow UI on http://127.0.0.1:$(MLFLOW_PORT) over this project's store (mlruns/)
	@mkdir -p mlruns
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db \
	  --default-artifact-root $(CURDIR)/mlruns/artifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

mlflow-server: ## A real MLflow server on http://127.0.0.1:$(MLFLOW_PORT) (SQLite + artifacts in mlruns/): export MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)
	@mkdir -p mlruns/artifacts
	$(BIN)/mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db \
	  --artifacts-destination $(CURDIR)/mlruns/artifacts --serve-artifacts \
	  --host 127.0.0.1 --port $(MLFLOW_PORT) --workers 1

report: ## Print the last pipeline report (metrics/report.json) as a table
	@$(BIN)/edgesmith report metrics/report.json

results: ## Regenerate docs/results.md from metrics/*.json
	$(BIN)/edgesmith results --metrics metrics --out docs/results.md

doctor: ## Check the stack, Keras flavour, TFLite runtime, dataset and tracking store
	$(BIN)/edgesmith doctor

bench-stability: ## Run-to-run spread of p50 latency of the pipeline's .tflite files (8 fresh runs, 1 vs 5 windows)
	$(BIN)/python benchmarks/stability.py models/tflite --rounds 8 --windows 1 5 --json metrics/bench_stability.json

clean: ## Remove pipeline outputs of both profiles (keeps .venv, the DVC cache and mlruns/)
	rm -rf data models metrics plots $(QUICK)/data $(QUICK)/models $(QUICK)/metrics $(QUICK)/plots
