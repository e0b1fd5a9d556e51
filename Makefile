# xcal: every target creates .venv if it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.xcal-installed
# The CPU build of torch: an unpinned or newer torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: setup fetch run test lint sweep bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]" "$(TORCH)"
	$(PY) -m pip install --quiet --no-deps netcal==1.4.0
	touch $(STAMP)

setup: $(STAMP)

fetch: $(STAMP)
	$(VENV)/bin/xcal-fetch

# The main job: a small size sweep on the embedded default, then a per-language table.
run: fetch
	$(VENV)/bin/xcal -m experiment=embedded_sweep
	$(PY) -m xcal.report.summary multirun/embedded_sweep

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

sweep: fetch
	$(VENV)/bin/xcal -m experiment=size_sweep

clean:
	rm -rf outputs multirun/*/ .pytest_cache .ruff_cache
