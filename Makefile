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
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

## demo: until the training pipeline lands, the most useful thing the library does:
## derive the catalog, derive and show a generator given as text, and property-check one.
demo: $(STAMP)
	$(BIN)/fmicl divergences list
	$(BIN)/fmicl divergences derive "(u-1)**2/(u+1)" --name vlc_from_text
	$(BIN)/fmicl check js

## test: lint, type-check, then the whole test suite
test: lint
	$(BIN)/python -m pytest -n 2 -q

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

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
