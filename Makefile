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
PYTEST_WORKERS ?= 2
# No usage telemetry from MLflow, Prefect or Great Expectations (the machine may be offline).
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export NO_MKDOCS_2_WARNING := 1

.PHONY: install demo stop serve prefect-deploy docker-pool test check docs dist lint lock clean ui-check \
	airflow-venv airflow-venv-background airflow-demo airflow-lock

# The Airflow provider's own environment (providers/airflow): Airflow 3.3 and Prefect 3.9 cannot
# share a virtualenv (their fastapi ranges do not meet), so Airflow gets its own, pinned by its own
# lock (providers/airflow/constraints.txt); its operators run the stages in $(VENV).
AF_VENV ?= .airflow-venv
AF_PY := $(AF_VENV)/bin/python
AF_STAMP := $(AF_VENV)/.installed-$(shell cat providers/airflow/pyproject.toml providers/airflow/constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
AF_LOCK := $(AF_VENV).lock

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

airflow-venv: $(AF_STAMP)

$(AF_STAMP): providers/airflow/pyproject.toml providers/airflow/constraints.txt
	@test -x $(AF_PY) || $(PYTHON) -m venv $(AF_VENV)
	$(AF_PY) -m pip install --quiet --upgrade "pip>=24"
	$(AF_PY) -m pip install --quiet --no-compile -c providers/airflow/constraints.txt -e "providers/airflow[test]"
	@rm -f $(AF_VENV)/.installed-*
	@touch $@

# Started by `make test` before the checks: the Airflow environment is built in the background
# while they and the other tests run; tests/test_airflow_provider.py waits for it (same lock).
airflow-venv-background:
	@( flock $(AF_LOCK) nice -n 5 $(MAKE) --no-print-directory airflow-venv < /dev/null > $(AF_VENV).log 2>&1 & )

## make airflow-demo: the example DAGs once with dag.test() in the Airflow environment (SQLite metadata
## database in the state folder): validate, train, evaluate, register, deploy on 127.0.0.1:$(PORT),
## then the drift check (`make stop` tears the endpoint down)
airflow-demo: install airflow-venv
	bash scripts/ensure-system.sh --router-only
	$(AF_PY) -m mlops_tasks_airflow.demo --python $(PY) --endpoint $(ENDPOINT) --port $(PORT)

## make airflow-lock: re-resolve the Airflow environment into providers/airflow/constraints.txt
airflow-lock:
	rm -rf .airflow-lock-venv && $(PYTHON) -m venv .airflow-lock-venv
	.airflow-lock-venv/bin/pip install --quiet --upgrade "pip>=24"
	.airflow-lock-venv/bin/pip install --quiet -e "providers/airflow[test]"
	.airflow-lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' | LC_ALL=C sort -f > providers/airflow/constraints.txt
	rm -rf .airflow-lock-venv

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

## make serve: serve every Prefect deployment (and apply the automations) from one process; without
## PREFECT_API_URL a local Prefect server starts on 127.0.0.1:4200 (UI: http://127.0.0.1:4200)
serve: install
	$(PY) -m deployments.serve --automations

## make prefect-deploy: the same deployments on the process work pool via prefect.yaml (then run
## `prefect worker start --pool mlops-process`); needs PREFECT_API_URL
prefect-deploy: install
	$(PY) -m deployments.prefect_yaml check
	$(PY) -m prefect work-pool inspect mlops-process >/dev/null 2>&1 || \
		$(PY) -m prefect work-pool create mlops-process --type process
	$(PY) -m prefect --no-prompt deploy --all
	$(PY) -m deployments.automations apply

## make docker-pool: build (or reuse) the flow image offline and deploy every flow to the Docker work
## pool mlops-docker (then `prefect worker start --pool mlops-docker`); BASE_IMAGE must be local
BASE_IMAGE ?= python:3.11-slim
docker-pool: install
	$(PY) -m prefect work-pool inspect mlops-docker >/dev/null 2>&1 || \
		$(PY) -m prefect work-pool create mlops-docker --type docker
	$(PY) -m deployments.docker_pool deploy --base-image $(BASE_IMAGE)

## make test: the code checks (`make check`), then the whole test suite in $(PYTEST_WORKERS) xdist workers
## (a worker that dies, e.g. killed for memory, ends the run naming its test: pytest-xdist 3.8 hangs
## after replacing a crashed worker under --dist loadgroup),
## a test module (or its tests on one deploy target) per worker at a time (installs and starts Docker, HAProxy and friends when missing;
## builds the Airflow environment .airflow-venv and the Docker base images in the background while the
## checks run; the tests needing them wait on the same locks)
test: install airflow-venv-background
	bash scripts/ensure-system.sh
	@( nice -n 5 $(PY) -m mlops_tasks.testing.docker < /dev/null > $(VENV)/docker-bases.log 2>&1 & )
	$(MAKE) --no-print-directory check
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --no-loadscope-reorder --max-worker-restart=0 $(PYTEST_ARGS)

## make check: ruff lint (incl. Google-style docstrings on the public API), ruff format check,
## the import-layer contracts (import-linter), mypy (strict, on mlops_tasks; [tool.mypy])
CHECK_PATHS := mlops_tasks flows deployments tests bench providers/airflow
check: install
	$(VENV)/bin/ruff check $(CHECK_PATHS)
	$(VENV)/bin/ruff format --check $(CHECK_PATHS)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

## make ui-check: the Prefect UI in headless Chromium (Debian's chromium, no browser download): starts
## mlflow server --serve-artifacts, a Prefect server and the served deployments on free loopback ports,
## runs training once and saves screenshots to .ui-check/screenshots (look at them); not part of make test
ui-check: install
	bash scripts/ensure-system.sh --chromium
	$(PY) scripts/ui_check.py

docs: install
	$(VENV)/bin/mkdocs build --strict --site-dir site

## make dist: wheel and sdist in dist/ (`python -m build`), checked with `twine check --strict`
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

lint: check

## make lock: re-resolve dependencies and rewrite constraints.txt (run the tests after)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade "pip>=24"
	.lock-venv/bin/pip install --quiet -e ".[dev]"
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(AF_VENV) $(AF_VENV).log $(AF_LOCK) site .pytest_cache .mypy_cache
