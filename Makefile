# dso — the two first commands of README.md are `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help dev-env demo test check lint typecheck imports unit integration clean

help:
	@echo "make demo      set up and show dso on the local vault"
	@echo "make test      set up and run the whole suite (lint, types, unit, integration, e2e)"
	@echo "make check     lint + types + architecture (import-linter contracts) only"

dev-env:
	@scripts/dev-env

demo: dev-env
	@scripts/demo

lint: dev-env
	$(VENV)/bin/ruff check kernel providers tests bench scripts build
	$(VENV)/bin/ruff format --check kernel providers tests bench scripts build

typecheck: dev-env
	$(VENV)/bin/mypy

# The layer table of docs/architecture.md: the contracts in pyproject.toml [tool.importlinter].
imports: dev-env
	$(VENV)/bin/lint-imports --no-cache --no-logo

check: lint typecheck imports

test: check
	$(PY) -m pytest -n auto -p no:cacheprovider $(PYTEST_ARGS)

unit: dev-env
	$(PY) -m pytest -n auto tests/unit $(PYTEST_ARGS)

integration: dev-env
	$(PY) -m pytest -n auto tests/integration tests/e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .dev-env .mypy_cache .ruff_cache .pytest_cache dist .build

# Frozen providers: PyInstaller onedir bundles in dist/plugins/ + SHA256SUMS (docs/building.md).
.PHONY: build install-providers

build: dev-env
	$(PY) build/build_providers.py build

install-providers: build
	$(PY) build/build_providers.py install $(if $(PLUGINS_DIR),--plugins-dir $(PLUGINS_DIR))

# The release an operator installs: the frozen dso and its providers as
# dist/dso-<version>-linux-x86_64.tar.gz and dist/dso_<version>_amd64.deb, with dist/SHA256SUMS
# (docs/building.md). Incremental: with nothing changed it takes about a second.
.PHONY: dist

dist: dev-env
	$(PY) build/build_release.py dist
