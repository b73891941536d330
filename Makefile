# imported-key-cdk: `make test` runs everything CI runs; `make demo` shows an import on a local KMS.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
LOCALSTACK_VENV := .localstack-venv
CDK_NAG2 := $(VENV)/cdk-nag2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export LOCALSTACK_PYTHON := $(CURDIR)/$(LOCALSTACK_VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: test lint demo synth bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --requirement requirements.txt
	touch $@

$(LOCALSTACK_VENV)/.installed: tests/localstack-requirements.txt
	$(PYTHON) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install --quiet --requirement tests/localstack-requirements.txt
	touch $@

# cdk-nag 2 beside the venv's cdk-nag 3: both are the `cdk_nag` package, so the scanner test runs
# cdk-nag 2 in a subprocess with this directory ahead of site-packages.
$(CDK_NAG2)/.installed: tests/cdk-nag2-requirements.txt $(VENV)/.installed
	rm -rf $(CDK_NAG2)
	$(VENV)/bin/pip install --quiet --no-deps --target $(CDK_NAG2) --requirement $<
	touch $@

# The AWS CDK command line (package.json pins it), run by the tests as a pipeline would.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint $(LOCALSTACK_VENV)/.installed $(CDK_NAG2)/.installed node_modules/.installed
	$(VENV)/bin/pytest

demo: $(VENV)/.installed $(LOCALSTACK_VENV)/.installed
	$(VENV)/bin/python scripts/demo.py

synth: $(VENV)/.installed
	CDK_OUTDIR=cdk.out $(VENV)/bin/python app.py

bench: $(VENV)/.installed $(LOCALSTACK_VENV)/.installed
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) $(LOCALSTACK_VENV) node_modules cdk.out build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
