# Every target that runs code first makes sure the virtualenv exists and holds
# exactly the locked versions (constraints.txt), so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp changes whenever the dependency list or the lock changes.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
DRIFT ?= 0.0
SEED ?= 7
ROWS ?= 5000
ENDPOINT ?= churn
PORT ?= 8000
PYTEST_ARGS ?=
# No usage telemetry from MLflow, Prefect or Great Expectations (the machine may be offline).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo stop test docs lint lock clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

## make demo: train, gate and register on embedded defaults, then deploy blue-green behind a local
## HAProxy on 127.0.0.1:$(PORT), send undrifted then drifted traffic and drift-check each window
## (DRIFT=0.5 or SEED=n change the training data; `make stop` tears it down)
demo: install
	bash scripts/ensure-system.sh --router-only
	$(PY) -m flows.training --rows $(ROWS) --seed $(SEED) --drift $(DRIFT)
	$(PY) -m flows.deployment --endpoint $(ENDPOINT) --port $(PORT) --strategy canary --bake 5 --termination-wait 0
	$(PY) -m flows.demo_traffic --endpoint $(ENDPOINT) --port $(PORT) --seed $(SEED)

## make stop: stop the demo endpoint (router and model-server slots)
stop: install
	$(PY) -m flows.deployment --stop --endpoint $(ENDPOINT)

## make test: the whole test suite (installs and starts Docker, HAProxy and friends when missing)
test: install
	bash scripts/ensure-system.sh
	$(PY) -m pytest $(PYTEST_ARGS)

docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: install
	$(VENV)/bin/ruff check mlops_tasks flows deployments tests bench

## make lock: re-resolve dependencies and rewrite constraints.txt (run the tests after)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade "pip>=24"
	.lock-venv/bin/pip install --quiet -e ".[dev]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) site .pytest_cache
