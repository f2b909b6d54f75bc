# tracardi-operator: every entry point a person or CI uses.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv debs image helm promtool devenv-up devenv-down devenv-status crds check-crds lint unit test run demo clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@echo "==> creating the virtualenv $(VENV) and installing pinned dependencies"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --disable-pip-version-check --progress-bar off -q --upgrade pip==25.3
	@$(PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]'
	@touch $@

venv: $(STAMP) ## the Python environment (.venv)

# Debian packages the tests use: Lua interpreters for the Argo CD health check (Argo CD runs Lua 5.1),
# redis-server for devenv's Redis, buildah (builds the image without a daemon; devenv's node agent runs its
# pods from it) and mmdebstrap (devenv's stand-in for the public Python base). Each package provides a
# command of the same name.
DEBS := lua5.1 lua5.4 redis-server buildah mmdebstrap
debs: ## install the Debian packages the tests need (once; needs root)
	@missing=""; for p in $(DEBS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "==> apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

image: $(STAMP) debs ## build the Dockerfile with buildah: tracardi-operator:dev and :<version> (devenv's stand-in base the first time)
	@$(PY) -m devenv.image build

helm: $(STAMP) ## build helm (pinned in devenv/helm/go.mod) into .devenv/bin for the chart tests; again only when go.mod changes
	@$(PY) -m devenv.helm

promtool: $(STAMP) ## build promtool (pinned in devenv/promtool/go.mod) into .devenv/bin for the alert rules' tests; again only when go.mod changes
	@$(PY) -m devenv.promtool

devenv-up: $(STAMP) debs ## build what is missing and start the local cluster and Elasticsearch
	@$(PY) -m devenv up

devenv-down: $(STAMP) ## stop everything devenv started
	@$(PY) -m devenv down

devenv-status: $(STAMP) ## what runs, where
	@$(PY) -m devenv status

crds: $(STAMP) ## regenerate crds/, the package's and the chart's copies from the pydantic models
	@$(PY) -m tracardi_operator.crdgen

check-crds: $(STAMP) ## fail when crds/ or a copy (package, chart) differs from what the models generate
	@$(PY) -m tracardi_operator.crdgen --check

lint: $(STAMP) ## ruff, mypy --strict and the import contract (.importlinter)
	@echo "==> ruff"; $(VENV)/bin/ruff check .
	@echo "==> mypy --strict"; $(VENV)/bin/mypy
	@echo "==> import contract: the decisions import no client"; set -o pipefail; $(VENV)/bin/lint-imports .importlinter | tail -3

unit: $(STAMP) ## the unit tests only (no servers)
	@$(PY) -m pytest tests/unit -q

# The suite runs on TEST_WORKERS pytest-xdist workers, a test file at a time each; every worker after the
# first brings up a devenv of its own beside .devenv (.devenv-gw1, ...) and stops it afterwards.
# TEST_WORKERS=0 runs it in one process, on .devenv alone.
# The node agents run probes at TEST_PROBE_TIME_SCALE of the pods' delays and periods (devenv/README.md).
TEST_WORKERS ?= 2
TEST_PROBE_TIME_SCALE ?= 0.2
test: $(STAMP) debs ## the whole suite: lint, CRD drift, unit, integration and end-to-end on devenv
	@$(MAKE) --no-print-directory lint check-crds image helm promtool
	@echo "==> devenv (built and started if needed; the tests reuse it)"
	@DEVENV_PROBE_TIME_SCALE=$(TEST_PROBE_TIME_SCALE) $(PY) -m devenv up
	@echo "==> tests on $(TEST_WORKERS) workers"
	@DEVENV_PROBE_TIME_SCALE=$(TEST_PROBE_TIME_SCALE) $(PY) -m pytest -v -p no:cacheprovider --durations=20 -n $(TEST_WORKERS) --dist loadfile

run: devenv-up ## apply crds/ and run the operator against $$KUBECONFIG (default .devenv/kubeconfig)
	@KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.devenv/kubeconfig} $(PY) -m tracardi_operator apply-crds
	@KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.devenv/kubeconfig} $(VENV)/bin/tracardi-operator run

demo: devenv-up ## the whole story on the local environment: install, seed, two upgrades, retention
	@$(PY) -m devenv.demo

clean: devenv-down ## stop devenv and remove its state (the test workers' too)
	rm -rf .devenv .devenv-gw*
