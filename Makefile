# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both build .venv from the pinned requirements.lock first; nothing else needs installing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock 2>/dev/null | cut -c1-16)
PIP_VERSION := 26.3
# checkov pins an older boto3 than the project, so it gets a venv (and a lock) of its own
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell sha256sum requirements-checkov.lock 2>/dev/null | cut -c1-16)
# parliament and cloudsplaining, the IAM checkers of the apply tests (tests/iam_review.py):
# their own venv and lock too (checkov's pins an older cloudsplaining)
IAM_VENV := .venv-iam
IAM_STAMP := $(IAM_VENV)/.installed-$(shell sha256sum requirements-iam.lock 2>/dev/null | cut -c1-16)
# the runtime twin of SageMaker's scikit-learn 1.9-0 image: its packages at its versions, on
# its Python (3.12), for local mode's Preprocess, BatchTransform and serving (docs/local-mode.md)
TWIN_LOCK := requirements-sklearn-1.9-0.lock
TWIN_VENV := .venv-sklearn-1.9-0
TWIN_STAMP := $(TWIN_VENV)/.installed-$(shell sha256sum $(TWIN_LOCK) 2>/dev/null | cut -c1-16)
# the first Python 3.12 that runs: on PATH, else pyenv's (a pyenv shim may exist and fail)
TWIN_PYTHON ?= $(shell for c in python3.12 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 2>/dev/null); do $$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { command -v $$c; break; }; done)
TWIN_PIP_VERSION := $(shell sed -n 's/^pip==//p' $(TWIN_LOCK))

# Terraform installs providers from the local mirror only (see terraform.tfrc); never from ~.
export TF_CLI_CONFIG_FILE := $(CURDIR)/terraform.tfrc
export CHECKPOINT_DISABLE := 1

# e.g. make demo DEMO_ARGS="--yes --rows 1000000"
DEMO_ARGS ?=

.PHONY: install twin test test-fast test-infra demo serve lint benchmark lambda-package aws-acceptance bootstrap-target bootstrap-dev preflight clean

install: $(STAMP) $(CHECKOV_STAMP) $(IAM_STAMP) $(TWIN_STAMP)

twin: $(TWIN_STAMP)

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required: run make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --requirement requirements.lock
	@rm -f $(VENV)/.installed-*
	@touch $@

$(CHECKOV_STAMP): requirements-checkov.lock
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --requirement requirements-checkov.lock
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

$(IAM_STAMP): requirements-iam.lock
	@test -x $(IAM_VENV)/bin/python || $(PYTHON) -m venv $(IAM_VENV)
	$(IAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(IAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --requirement requirements-iam.lock
	@rm -f $(IAM_VENV)/.installed-*
	@touch $@

$(TWIN_STAMP): $(TWIN_LOCK)
	@test -n "$(TWIN_PYTHON)" || { echo "the scikit-learn image's runtime twin needs Python 3.12 (the image's): install it, or run make TWIN_PYTHON=/path/to/python3.12 ..." >&2; exit 2; }
	@test -x $(TWIN_VENV)/bin/python || $(TWIN_PYTHON) -m venv $(TWIN_VENV)
	$(TWIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(TWIN_PIP_VERSION)
	$(TWIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --requirement $(TWIN_LOCK)
	sed -i 's/collections\.Mapping/collections.abc.Mapping/g' $$($(TWIN_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/sagemaker_containers/_mapping.py
	@rm -f $(TWIN_VENV)/.installed-*
	@touch $@

# the run report's browser test: Debian's chromium and chromedriver (no browser download)
BROWSER := /usr/bin/chromedriver
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

$(BROWSER):
	$(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver \
	  || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium chromium-driver)

# The suite on several workers (pytest-xdist; idle ones take tests queued on busy ones): the
# Terraform tests mostly wait on the provider, so more workers than cores keep the cores busy
# (docs/development.md: the measures). TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test: $(STAMP) $(CHECKOV_STAMP) $(IAM_STAMP) $(TWIN_STAMP) $(BROWSER)
	$(PYTEST)

# two lanes of the same suite (make test runs both): everything but Terraform, and Terraform
test-fast: $(STAMP) $(IAM_STAMP) $(TWIN_STAMP) $(BROWSER)
	$(PYTEST) -m "not infra"

test-infra: $(STAMP) $(CHECKOV_STAMP) $(IAM_STAMP) $(TWIN_STAMP)
	$(PYTEST) -m infra

demo: $(STAMP) $(TWIN_STAMP)
	$(BIN)/python -m examples.demo $(DEMO_ARGS)

# the stage's promoted model on http://127.0.0.1:8080 (make demo leaves each stage's copy)
STAGE ?= preprod
serve: $(STAMP) $(TWIN_STAMP)
	$(BIN)/python -m local_mode.serve --stage $(STAGE)

# speed and memory targets, as ratios against baselines measured in the same run; last, the
# capacity plan's rates, recorded (no ratio: pipelines/capacity_measurements.json, with the
# machine and the date)
benchmark: $(STAMP) $(TWIN_STAMP)
	$(BIN)/python -m benchmarks.transform
	$(BIN)/python -m benchmarks.quality
	$(BIN)/python -m benchmarks.parquet_input
	$(BIN)/python -m benchmarks.scale_out
	$(BIN)/python -m benchmarks.local_stage
	$(BIN)/python -m benchmarks.serving
	$(BIN)/python -m benchmarks.throughput --record

# the acceptance run in two sandbox accounts (#35; docs/deploying-to-aws.md,
# section 8), e.g. make aws-acceptance ACCEPTANCE_ARGS="--dev-profile d --stage-profile s ...";
# Terraform installs the provider from its registry there (a real run), not from the mirror
ACCEPTANCE_ARGS ?=
aws-acceptance: $(STAMP) $(TWIN_STAMP)
	env -u TF_CLI_CONFIG_FILE $(BIN)/python -m acceptance $(ACCEPTANCE_ARGS)

# the dispatch Lambda's zip that infra/dev-account deploys (byte-identical on every build)
lambda-package: $(STAMP)
	$(BIN)/python -m lambdas.package build/dispatch-deploy.zip

# the first deployment's commands (docs/deploying-to-aws.md), with the admin profile of the
# account in AWS_PROFILE, e.g. make bootstrap-target STAGE=prod BOOTSTRAP_ARGS="--dry-run";
# GITHUB_REPOSITORY=owner/name with GITHUB_TOKEN sets the GitHub variables (else printed).
# Terraform installs the provider from its registry there, not from the mirror.
BOOTSTRAP_ARGS ?=
BOOTSTRAP_GITHUB := $(if $(GITHUB_REPOSITORY),--github-repository $(GITHUB_REPOSITORY))
bootstrap-target: $(STAMP)
	env -u TF_CLI_CONFIG_FILE $(BIN)/python -m bootstrap target --stage $(STAGE) $(BOOTSTRAP_GITHUB) $(BOOTSTRAP_ARGS)

bootstrap-dev: $(STAMP)
	env -u TF_CLI_CONFIG_FILE $(BIN)/python -m bootstrap dev $(BOOTSTRAP_GITHUB) $(BOOTSTRAP_ARGS)

preflight: $(STAMP)
	$(BIN)/python -m bootstrap preflight --stage $(STAGE) $(BOOTSTRAP_GITHUB) $(BOOTSTRAP_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PRE_COMMIT_HOME=$(CURDIR)/.cache/pre-commit $(BIN)/pre-commit run --all-files

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(IAM_VENV) $(TWIN_VENV) build .cache .pytest_cache .ruff_cache .mypy_cache
