# cartokit: `make demo` and `make test` work on a fresh machine: they create .venv when it is
# missing and install torch 2.13.0 (the CPU wheel) before the package, so that the package's torch
# range is already satisfied and pip pulls no CUDA packages.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.cartokit-installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cartokit demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check cartokit tests bench

lint: $(STAMP)
	$(VENV)/bin/ruff check cartokit tests bench
	$(VENV)/bin/ruff format --check cartokit tests bench

bench: $(STAMP)
	$(PY) bench/metrics_speed.py
	$(PY) bench/recorder_memory.py
	$(PY) bench/allenai_metrics.py

clean:
	rm -rf $(VENV) runs build *.egg-info
