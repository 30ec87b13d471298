# Everything sets itself up from nothing: `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch lies on the build machines' disk; an unpinned torch pulls a multi-GB
# CUDA build, so it is installed first and the package's range (torch>=2.4) is then satisfied.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test lint demo scifact clean

$(BIN)/honed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(BIN)/honed

setup: $(BIN)/honed

# The README's test command: lint (ruff, incl. complexity and no-print rules) and the test suite,
# which also checks the import-linter layers and the package's shape (tests/test_architecture.py).
test: setup
	$(BIN)/ruff check src tests bench examples
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench examples
	$(BIN)/lint-imports
	$(BIN)/mypy src

# The demo plans its run to a 6-minute budget (--time-budget: fewer epochs, a sample of the
# training queries, as far as this machine needs) so that with the serving example it ends within
# 8 minutes on a 2-core CPU; everything else (rotation, hybrid, planner) runs as in `make scifact`.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/honed run examples/scifact-mini --out runs/demo --overwrite --time-budget 6m
	HF_HUB_OFFLINE=1 $(BIN)/python examples/serve.py runs/demo examples/scifact-mini "vitamin D deficiency and bone fractures"
	@echo
	@echo "report: $(CURDIR)/runs/demo/report.html (one page, opens from disk: charts, query explorer)"
	@echo "search page and JSON API: $(BIN)/honed serve runs/demo/index --compare all-MiniLM-L6-v2"
	@echo "  then open http://127.0.0.1:8000/ (API: /search?q=...&k=10&mode=dense|hybrid, /health)"

scifact: setup
	HF_HUB_OFFLINE=1 $(BIN)/honed run ../shared/data/scifact --out runs/scifact

clean:
	rm -rf $(VENV) runs .pytest_cache
