# Everything installs from nothing: `make demo` and `make test` create .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install demo test lint format clean

install: $(STAMP)

# Re-installs only when the package metadata or the pins change (a second call does nothing).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch alone and pinned first, so no resolver step can reach for a CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The offline quick start: a small BERMo, movement-pruned to 10% on the synthetic task (~1 min on 2 cores).
demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/bermo-prune run recipes/quickstart.yaml --overwrite

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bermo_prune tests benchmarks
	$(VENV)/bin/ruff format --check bermo_prune tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format bermo_prune tests benchmarks
	$(VENV)/bin/ruff check --fix bermo_prune tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
