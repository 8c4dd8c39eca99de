# Front door. `make run` runs the local loop, `make test` runs what CI runs; both install what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_VERSION := 3.11
UV_VERSION := 0.13.9
# Byte-compiled caches make every later process start faster (torch, transformers, mlflow are large).
unexport PYTHONDONTWRITEBYTECODE
# Local state (feature data, Feast registry and online store, MLflow store, pipeline root, logs).
export MLOPS_HOME ?= $(CURDIR)/.local
# torch==2.13.0+cpu is a local wheel on this machine's disk; elsewhere point UV_FIND_LINKS at a folder
# holding it, or set UV_EXTRA_INDEX_URL to a PyTorch CPU index.
WHEELS_DIR ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS_DIR)),--find-links $(WHEELS_DIR))

UV := .tools/bin/uv
PY := .venv/bin/python
SERVING_PY := .venv-serving/bin/python
DEB_PACKAGES := prometheus prometheus-alertmanager
# Tests of the cluster's Feast config run its SQL registry on PostgreSQL and its online store on Redis.
TEST_DEB_PACKAGES := postgresql redis-server
BENCH_DEB_PACKAGES := wrk
DEMO_CUSTOMERS ?= 1000
# `make pipeline MODELS=a,b` / `make serve MODELS=a PORT=8181`: empty means every spec in pipelines/models/.
MODELS ?=
PORT ?=
MODEL_ARGS := $(if $(MODELS),--models $(MODELS))

.PHONY: help install run test test-acceptance test-packages lint format compile clean distclean lock data features pipeline serve rollout monitor fuzz rules-test check-manifests manifests images deb-packages bench bench-scale bench-packages

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: .venv/.synced .venv-serving/.synced .venv-tools/.synced manifests/schemas/node_modules/.installed deb-packages ## Create the environments and install Debian packages (idempotent)

run: install data features ## The local loop: data -> Feast -> pipeline (train ... register -> canary) -> drift -> alert -> retrain
	$(PY) -m pipelines.local_run $(MODEL_ARGS)
	$(PY) -m pipelines.loop_demo --model conversion-xgboost --time-scale 30
	$(PY) -m pipelines.loop_demo --model offer-ranker-xgboost --time-scale 30 --keep-data
	@echo "local state: $(MLOPS_HOME)"

test: install .venv-bench/.synced bench-packages test-packages lint rules-test ## Everything CI runs: lint, alert-rule checks, both test suites (bench harness smoke tests included)
	$(SERVING_PY) -m pytest -q --durations=10 tests/serving_env
	$(PY) -m pytest -q --durations=25 --ignore=tests/serving_env -m "not acceptance"

test-acceptance: install test-packages ## The acceptance tier: a user's model through the whole loop in a copy of the repository (~10 min)
	$(PY) -m pytest -q -m acceptance tests

fuzz: install ## The fuzz tier: every service surface with 5,000 derandomized hostile cases (make test runs 250)
	MLOPS_FUZZ_CASES=5000 $(PY) -m pytest -q -m fuzz tests/inference tests/monitoring

rules-test: .venv/.synced deb-packages ## promtool check/test the alert rules, amtool check the Alertmanager config
	$(PY) -m monitoring.rules.check

lint: .venv/.synced ## ruff check + format check
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: .venv/.synced ## Apply ruff's formatting and safe fixes
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

compile: .venv/.synced ## Compile the pipelines: IR YAML + Kubernetes Pipeline/PipelineVersion (pipelines/compiled/)
	$(PY) -m pipelines.compile

data: .venv/.synced ## Generate the demo data (skipped when already up to date)
	$(PY) -m feature_repo.demo_data --customers $(DEMO_CUSTOMERS)

features: .venv/.synced ## feast apply + materialize the online store (skipped when nothing changed)
	$(PY) -m feature_repo.store bootstrap

pipeline: .venv/.synced ## Run only the training pipeline locally over every spec or MODELS=a,b (data and features must exist)
	$(PY) -m pipelines.local_run $(MODEL_ARGS)

serve: .venv/.synced ## Serve the registered models (or MODELS=a,b) locally (Triton + canary router on :8081, or PORT=) until Ctrl-C
	$(PY) -m inference.serve $(MODEL_ARGS) $(if $(PORT),--port $(PORT))

rollout: .venv/.synced ## Canary the registry's challengers by hand (the pipeline already does it for what it registers)
	$(PY) -m inference.local_rollout

monitor: install ## Run Prometheus, Alertmanager, the drift service and the retrain trigger locally (Ctrl-C stops)
	$(PY) -m monitoring.local_stack --detectors "$(MLOPS_HOME)/detectors"

clean: ## Remove all local state (keeps the environments)
	rm -rf "$(MLOPS_HOME)"

distclean: clean ## Also remove the environments and build outputs
	rm -rf .venv .venv-serving .venv-tools .venv-bench .tools build

lock: $(UV) ## Regenerate the lock files from *.requirements.in
	$(UV) pip compile -q platform.requirements.in -o platform.lock --python-version $(PYTHON_VERSION) $(FIND_LINKS)
	$(UV) pip compile -q serving.requirements.in -o serving.lock --python-version $(PYTHON_VERSION) $(FIND_LINKS)
	$(UV) pip compile -q tools.requirements.in -o tools.lock --python-version $(PYTHON_VERSION)
	$(UV) pip compile -q bench.requirements.in -o bench.lock --python-version $(PYTHON_VERSION)

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: platform.lock | $(UV)
	[ -x .venv/bin/python ] || $(UV) venv -q .venv --python $(PYTHON_VERSION)
	VIRTUAL_ENV=.venv $(UV) pip sync -q platform.lock $(FIND_LINKS)
	touch $@

.venv-serving/.synced: serving.lock | $(UV)
	[ -x .venv-serving/bin/python ] || $(UV) venv -q .venv-serving --python $(PYTHON_VERSION)
	VIRTUAL_ENV=.venv-serving $(UV) pip sync -q serving.lock $(FIND_LINKS)
	touch $@

# MLServer (the peer OIP server `make bench` compares Triton with) pins its own web and gRPC stack.
.venv-bench/.synced: bench.lock | $(UV)
	[ -x .venv-bench/bin/python ] || $(UV) venv -q .venv-bench --python $(PYTHON_VERSION)
	VIRTUAL_ENV=.venv-bench $(UV) pip sync -q bench.lock
	touch $@

.venv-tools/.synced: tools.lock | $(UV)
	[ -x .venv-tools/bin/python ] || $(UV) venv -q .venv-tools --python $(PYTHON_VERSION)
	VIRTUAL_ENV=.venv-tools $(UV) pip sync -q tools.lock
	touch $@

manifests/schemas/node_modules/.installed: manifests/schemas/package-lock.json manifests/schemas/package.json
	npm ci --prefix manifests/schemas --no-audit --no-fund
	touch $@

# CUDA build of torch for the training image (a tag of the PyTorch wheel index, e.g. cu128).
TORCH_CUDA ?= cu128
IMAGE_NAMES = $$($(PY) -c 'from core.images import PLATFORM_IMAGE as p, TRAINING_IMAGE as t, SERVING_IMAGE as s; print(p, t, s)')

images: .venv/.synced ## Build the platform, training and serving images (tags: core/images.py); PUSH=1 pushes
	@set -- $(IMAGE_NAMES); \
	if ! docker info >/dev/null 2>&1; then echo "no container engine here: skipped building $$*"; exit 0; fi; \
	docker build -f components/Dockerfile --target platform -t "$$1" .; \
	docker build -f components/Dockerfile --target training --build-arg TORCH_CUDA=$(TORCH_CUDA) -t "$$2" .; \
	docker build -f inference/Dockerfile --target serving -t "$$3" .; \
	if [ "$(PUSH)" = 1 ]; then for name in "$$@"; do docker push "$$name"; done; fi

check-manifests: .venv/.synced .venv-tools/.synced manifests/schemas/node_modules/.installed ## Pre-merge check of a manifest change (~40 s): overlays build, schemas, policies, checkov, compiled pipeline current
	$(PY) -m pytest -q tests/manifests tests/pipelines/test_compile.py

manifests: ## Render every overlay (dev-standard: dev in KServe Standard mode) into build/manifests/<env>.yaml
	mkdir -p build/manifests
	for env in dev staging prod dev-standard; do kubectl kustomize kustomize/overlays/$$env > build/manifests/$$env.yaml; done

deb-packages: ## Install prometheus (promtool) and alertmanager (amtool) from Debian when missing
	@if command -v promtool >/dev/null && command -v prometheus-alertmanager >/dev/null; then \
	  echo "debian packages: present ($(DEB_PACKAGES))"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	fi

test-packages: ## Install PostgreSQL and Redis (servers the tests start) from Debian when missing
	@if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "debian packages: present ($(TEST_DEB_PACKAGES))"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(TEST_DEB_PACKAGES); \
	fi

bench: install .venv-bench/.synced bench-packages ## Benchmarks: serving (Triton, router, MLServer) and monitoring (detectors); tables in build/bench/
	$(PY) -m inference.bench --out build/bench
	$(SERVING_PY) -m monitoring.bench --out build/bench

# SCALES=1,10 or MODELS=a,b narrow it; BENCH_SCALE_ARGS passes more (e.g. --timeout-s 1500).
SCALES ?= 1,10,100
bench-scale: install ## The pipeline's cost curve at 1x, 10x, 100x the demo data: time, rows/s, peak memory, slope (build/bench-scale/)
	$(PY) -m pipelines.bench_scale --scales $(SCALES) --base-customers $(DEMO_CUSTOMERS) --out build/bench-scale $(MODEL_ARGS) $(BENCH_SCALE_ARGS)

bench-packages: ## Install wrk (HTTP load generator for make bench) from Debian when missing
	@if command -v wrk >/dev/null; then \
	  echo "debian packages: present ($(BENCH_DEB_PACKAGES))"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(BENCH_DEB_PACKAGES); \
	fi
