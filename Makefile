# xcal: every target creates .venv if it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of torch: an unpinned or newer torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
RUNTIME_STAMP := $(VENV)/.xcal-runtime
DEV_STAMP     := $(VENV)/.xcal-dev

SWEEP  ?= embedded_sweep

.PHONY: setup fetch run study pilot fixed-budget-study mixture sweep report test lint bench clean

$(RUNTIME_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e . "$(TORCH)"
	touch $(RUNTIME_STAMP)

# Tests also need the reference implementations of the calibration metrics (the [dev] extra).
$(DEV_STAMP): $(RUNTIME_STAMP)
	$(PY) -m pip install --quiet -e ".[dev]" "$(TORCH)"
	$(PY) -m pip install --quiet --no-deps netcal==1.4.0
	touch $(DEV_STAMP)

setup: $(DEV_STAMP)

fetch: $(RUNTIME_STAMP)
	$(VENV)/bin/xcal-fetch

# The main job: two cells of the study at a small scale, then their report beside the committed study's cells.
run: fetch
	$(VENV)/bin/xcal -m experiment=embedded_sweep
	$(VENV)/bin/xcal-report multirun/embedded_sweep --compare multirun/embedded_study

# The early-stopping study (conf/experiment/embedded_study.yaml), the first answer: four grids into
# multirun/embedded_study, each over seed = 0,1,2, then docs/findings_early_stopping.md (its size ladders' slopes).
# Re-running skips finished jobs (the committed ones too). VitaminC 16,000 was still improving on English dev at
# the task's 2,000-step cap (2 epochs), so its cap is 6,000 steps.
STUDY_GRIDS := "intermediate=none" "intermediate=vitaminc intermediate.size=1000,4000" \
               "intermediate=vitaminc intermediate.size=16000 intermediate.max_steps=6000" \
               "intermediate=social_iqa intermediate.size=108,432,null"
study: fetch
	status=0; for grid in $(STUDY_GRIDS); do $(VENV)/bin/xcal -m experiment=embedded_study $$grid || status=1; done; \
	$(VENV)/bin/xcal-report multirun/embedded_study --findings docs/findings_early_stopping.md || status=1; exit $$status

# The target-protocol pilot (docs/study.md): the study's baseline cell under early stopping (seeds 3-5, beside the
# study's 0-2) and under a fixed 2-epoch budget (seeds 0-5: the fixed-budget study's baseline cell); then the plan
# each protocol gives.
PILOT_GOAL  := --plan ece=0.02 brier=0.01
pilot: fetch
	$(VENV)/bin/xcal -m experiment=embedded_study intermediate=none sweep_name=pilot_early_stopping seed=3,4,5
	$(VENV)/bin/xcal -m experiment=fixed_budget_study intermediate=none seed=0,1,2,3,4,5
	$(VENV)/bin/xcal-report multirun/embedded_study multirun/pilot_early_stopping $(PILOT_GOAL) \
	  --out multirun/pilot_early_stopping/report
	$(VENV)/bin/xcal-report multirun/fixed_budget_study $(PILOT_GOAL) --plan-costs multirun/embedded_study \
	  --out multirun/fixed_budget_study/plan

# The committed study behind the answer, under the pilot's protocol (conf/experiment/fixed_budget_study.yaml),
# designed with the pilot's plan (docs/study.md): 3 stage-1 encoders x 3 target seeds in each headline cell (an
# intermediate task's largest size) against 12 baseline seeds, what about 15 h of this machine bought; then
# docs/findings.md and the README's answer. Encoder 0's jobs keep plain names; the others add
# ",intermediate.seed=N". Headline cells first, so that a run cut short still answers the question.
FIXED_GRIDS := "intermediate=none seed=0,1,2,3,4,5,6,7,8,9,10,11" \
  "intermediate=social_iqa intermediate.size=null seed=0,1,2" \
  "intermediate=vitaminc intermediate.size=16000 intermediate.max_steps=6000 seed=0,1,2" \
  "intermediate=social_iqa intermediate.size=null intermediate.seed=1,2 seed=0,1,2" \
  "intermediate=vitaminc intermediate.size=16000 intermediate.max_steps=6000 intermediate.seed=1,2 seed=0,1,2"
fixed-budget-study: fetch
	status=0; for grid in $(FIXED_GRIDS); do $(VENV)/bin/xcal -m experiment=fixed_budget_study $$grid || status=1; done; \
	$(VENV)/bin/xcal-report multirun/fixed_budget_study --findings docs/findings.md --readme README.md || status=1; \
	exit $$status

# A mixture of VitaminC and Social IQa as stage 1 beside each task alone (conf/experiment/mixture_sweep.yaml).
MIXTURE_GRIDS := "intermediate=mixture intermediate.tasks=[vitaminc,social_iqa] intermediate.size=0,1000,4000" \
  "intermediate=vitaminc intermediate.size=1000,4000" "intermediate=social_iqa intermediate.size=1000,null"
mixture: fetch
	status=0; for grid in $(MIXTURE_GRIDS); do $(VENV)/bin/xcal -m experiment=mixture_sweep $$grid || status=1; done; \
	$(VENV)/bin/xcal-report multirun/mixture_sweep || status=1; exit $$status

# Any experiment's grid (make sweep SWEEP=size_sweep), then its report; re-running skips finished jobs.
sweep: fetch
	$(VENV)/bin/xcal -m experiment=$(SWEEP)
	$(VENV)/bin/xcal-report multirun/$(SWEEP)

report: $(RUNTIME_STAMP)
	$(VENV)/bin/xcal-report multirun/$(SWEEP)

# Two pytest-xdist workers: most of the suite's time is single-threaded (imports, Hydra, data loading in the
# jobs the tests start), so two run side by side on two cores (tests/conftest.py gives each one a core).
# One file per worker at a time: a module's shared fixtures are built once, by the worker that runs it. Files in
# collection order, where tests/conftest.py puts the longest first (LONGEST_FIRST).
TEST_WORKERS ?= 2
test: $(DEV_STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(DEV_STAMP)
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_coverage.py
	$(PY) benchmarks/bench_sweep_cache.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_gpu.py all
	$(PY) benchmarks/readme_figures.py

clean:
	rm -rf outputs multirun/*/ .pytest_cache .ruff_cache
