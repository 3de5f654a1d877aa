# Two entry points: `make run` (the default study on embedded data) and `make test` (the test suite).
# Each creates the virtual environment it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test test-fast dry-run lint format clean-results

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

run: $(BIN)/.installed  ## run the default study (digits, DEC/IDEC/DCN x baseline/BRB x 3 seeds)
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	@echo "results: results/metrics.parquet, results/tables/, results/plots/"

test: $(BIN)/.installed  ## the whole test suite (workflow and SLURM tests included)
	$(BIN)/pytest -q

test-fast: $(BIN)/.installed  ## unit tests only
	$(BIN)/pytest -q -m "not slow and not slurm"

dry-run: $(BIN)/.installed
	$(BIN)/snakemake -n --configfile workflow/presets/ae_table.yaml

lint: $(BIN)/.installed  ## ruff (settings in pyproject.toml), snakemake --lint, snakefmt
	$(BIN)/ruff check brb tests benchmarks
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

format: $(BIN)/.installed
	$(BIN)/snakefmt Snakefile workflow/rules

clean-results:
	rm -rf results/* .snakemake
