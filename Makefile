# Every target works on a fresh clone: the virtual environment is made on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev,text]'
	touch $(STAMP)

## demo: the main job on its embedded default: pretrain a small CNN on scikit-learn's digits
## with SimCLR and the f-MICL objective (JS), evaluate it (kNN, linear probe, baselines), and
## write the run folder with its report and plots under runs/.
demo: $(STAMP)
	$(BIN)/fmicl train --out runs

## test: lint, type-check, then the whole test suite
test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/divergences.py
	$(BIN)/python benchmarks/objectives.py --quick
	$(BIN)/python benchmarks/training.py --quick
	$(BIN)/fmicl bench mi --quick --out runs/mi-quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache runs
