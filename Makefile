# imported-key-cdk: `make test` runs everything CI runs; `make demo` shows an import on a local KMS.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
LOCALSTACK_VENV := .localstack-venv
CDK_NAG2 := $(VENV)/cdk-nag2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export LOCALSTACK_PYTHON := $(CURDIR)/$(LOCALSTACK_VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# uv installs no bytecode, so without it every Python process of a test run (three workers and
# about twenty subprocesses) would compile what it imports, aws-cdk-lib's large modules among
# them: some 4 s of CPU each. The first process to import a module writes its bytecode, here,
# outside the source tree, and the others read it, also where PYTHONDONTWRITEBYTECODE is set.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/.cache/pycache

.PHONY: test test-aws lint demo synth bench clean

# uv installs both virtual environments (about 4x faster than pip on a fresh machine). It is
# pinned and bootstrapped with the machine's pip into .tools/, outside both environments.
UV_VERSION := 0.13.9
UV := .tools/uv-$(UV_VERSION)/bin/uv

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .tools/uv-$(UV_VERSION) uv==$(UV_VERSION)

# --seed puts pip into .venv: the handler's bundling runs `python -m pip install --platform ...`.
$(VENV)/.installed: requirements.txt pyproject.toml | $(UV)
	$(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(VENV)/bin/python --requirement requirements.txt
	touch $@

$(LOCALSTACK_VENV)/.installed: tests/localstack-requirements.txt | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(LOCALSTACK_VENV)
	$(UV) pip install --quiet --python $(LOCALSTACK_VENV)/bin/python --requirement tests/localstack-requirements.txt
	touch $@

# cdk-nag 2 beside the venv's cdk-nag 3: both are the `cdk_nag` package, so the scanner test runs
# cdk-nag 2 in a subprocess with this directory ahead of site-packages.
$(CDK_NAG2)/.installed: tests/cdk-nag2-requirements.txt $(VENV)/.installed
	rm -rf $(CDK_NAG2)
	$(UV) pip install --quiet --python $(VENV)/bin/python --no-deps --target $(CDK_NAG2) --requirement $<
	touch $@

# The AWS CDK command line (package.json pins it), run by the tests as a pipeline would.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Three pytest workers on two cores (each with its own LocalStack): many tests wait on an
# emulator, a timeout or a subprocess, so a third worker fills the gaps. Every test still runs.
PYTEST_WORKERS ?= 3

# The environments install side by side (the two venvs and npm at once, cdk-nag 2 once the venv
# is there): each mostly waits on downloads and disk. Only here, so `make clean test` still
# cleans first.
TEST_ENVIRONMENTS := $(VENV)/.installed $(LOCALSTACK_VENV)/.installed $(CDK_NAG2)/.installed \
	node_modules/.installed

# ruff first (seconds); mypy --strict runs inside pytest as one test (tests/lint), in parallel
# with the rest, because on a fresh clone it takes a core for half a minute. The 20 slowest
# tests are listed at the end, to watch CI's time budget.
test:
	@$(MAKE) --no-print-directory --jobs=4 $(TEST_ENVIRONMENTS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=20

# Opt-in, never in CI: the end-to-end tests marked `aws` against the account and Region of your
# AWS credentials (environment or profile). Keys they create are scheduled for deletion after
# 7 days, secrets deleted at once. Everything is skipped without credentials or with CI set.
test-aws: $(VENV)/.installed
	IMPORTED_KEY_CDK_REAL_AWS=1 $(VENV)/bin/pytest tests/e2e -m aws -p no:cacheprovider

demo: $(VENV)/.installed $(LOCALSTACK_VENV)/.installed
	$(VENV)/bin/python scripts/demo.py

synth: $(VENV)/.installed
	CDK_OUTDIR=cdk.out $(VENV)/bin/python app.py

# The fleet time warp draws its plot with matplotlib, which only the benchmark needs.
MATPLOTLIB := matplotlib==3.10.7
WARP_KEYS ?= 1000
WARP_YEARS ?= 5

bench: $(VENV)/.installed $(LOCALSTACK_VENV)/.installed
	$(UV) pip install --quiet --python $(VENV)/bin/python $(MATPLOTLIB)
	$(VENV)/bin/python bench/run.py
	$(VENV)/bin/python bench/fleet_warp.py $(WARP_KEYS) $(WARP_YEARS) bench/fleet_warp.json bench/fleet_warp.png

clean:
	rm -rf $(VENV) $(LOCALSTACK_VENV) .tools node_modules cdk.out build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
