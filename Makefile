# Two commands do all the set-up themselves on a fresh machine:
#   make demo   run wsi-heatmap on the demo slide with the bundled model
#   make test   run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint install clean cli-docs

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/wsi-heatmap demo/demo_slide.tif --out demo-out
	@echo "Open demo-out/demo_slide/overlay.png, or browse: $(BIN)/wsi-heatmap view demo-out"

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check wsi model tests benchmarks tools research
	$(BIN)/ruff format --check wsi model tests benchmarks tools research
	$(BIN)/mypy

cli-docs: $(STAMP)
	$(BIN)/python tools/cli_docs.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
