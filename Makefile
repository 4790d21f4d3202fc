# Every target creates the project-local virtual environment (.venv) on first use and installs
# edgediff into it. The CPU path pins torch==2.13.0 through constraints/cpu.txt so that pip never
# pulls CUDA wheels; on a GPU pool install with plain `pip install -e .` instead.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-flux dashboard test test-slow lint clean

$(STAMP): pyproject.toml constraints/cpu.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11 or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e '.[test]'
	@touch $(STAMP)

## demo: the main job: a search (greedy baseline and Optuna, on local Ray) on the embedded DiT,
## then its dashboard written as one HTML file
demo: $(STAMP)
	$(BIN)/edgediff search --model digits-dit --study demo-digits-dit --method both --budget 4 \
		--workers 2 --images 64 --steps 25 --calib-samples 4
	$(BIN)/edgediff report demo-digits-dit -o edgediff-out/demo-digits-dit.html
	@echo "open edgediff-out/demo-digits-dit.html, or run 'make dashboard' for the live dashboard"

## demo-flux: the same search on the embedded FLUX-family model: diffusers' caches at their
## published defaults (the library-default baseline) beside Optuna's searched cache plans
demo-flux: $(STAMP)
	$(BIN)/edgediff search --model digits-flux --study demo-digits-flux --method both --budget 4 \
		--workers 2 --images 64 --steps 20
	$(BIN)/edgediff report demo-digits-flux -o edgediff-out/demo-digits-flux.html
	@echo "open edgediff-out/demo-digits-flux.html, or run 'make dashboard' for the live dashboard"

## dashboard: the live dashboard over the store (http://127.0.0.1:8765/)
dashboard: $(STAMP)
	$(BIN)/edgediff dashboard

## test: the test suite (slow tests excluded). First tests/setup_check.py: the Debian packages the
## tests need (postgresql, chromium) are installed with apt-get when missing and possible (root),
## else it says in one line what to run (or EDGEDIFF_TEST_SKIP=chromium,postgresql to skip them)
test: $(STAMP)
	@$(BIN)/python tests/setup_check.py
	$(BIN)/python -m pytest

## test-slow: the slow tests only (full model-card reproduction)
test-slow: $(STAMP)
	@$(BIN)/python tests/setup_check.py
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) edgediff-out .pytest_cache
